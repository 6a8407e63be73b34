// The real @permaweb/aoconnect against `tfao serve`: spawn a process, add a handler, message it.
//
//   tfao serve          # prints: tfao node ADDRESS listening on URL (module MODULE_ID, home ...)
//   npm install
//   TFAO_URL=http://127.0.0.1:8734 TFAO_MODULE=MODULE_ID node hello.mjs
//
// WALLET names the JWK file to sign with (default: the node home's ~/.tfao/wallet.json; any Arweave
// wallet works, e.g. one from `npx -y @permaweb/wallet > wallet.json`).
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { connect, createDataItemSigner } from '@permaweb/aoconnect'

const url = process.env.TFAO_URL ?? 'http://127.0.0.1:8734'
const module = process.env.TFAO_MODULE
if (!module) throw new Error('set TFAO_MODULE to the module id that tfao serve prints')
const walletFile = process.env.WALLET ?? join(process.env.TFAO_HOME ?? join(homedir(), '.tfao'), 'wallet.json')

const wallet = JSON.parse(readFileSync(walletFile, 'utf8'))
const signer = createDataItemSigner(wallet)
const owner = createHash('sha256').update(Buffer.from(wallet.n, 'base64url')).digest('base64url')  // its address
const ao = connect({ MU_URL: url, CU_URL: url, GATEWAY_URL: url })
const { address: scheduler } = await (await fetch(url)).json()  // the node is its processes' scheduler

const pid = await ao.spawn({ module, scheduler, signer, tags: [{ name: 'Name', value: 'hello' }] })
console.log('spawned', pid)

const send = async (tags, data) => {
  const message = await ao.message({ process: pid, signer, tags, data })
  return ao.result({ process: pid, message })
}

const evaluated = await send([{ name: 'Action', value: 'Eval' }], `
  Handlers.add("Hello", function (msg) msg.reply({ Data = "Hello, " .. msg.Data .. "!" }) end)
  return 1 + 41`)
console.log('eval:', evaluated.Output.data)

const greeted = await send([{ name: 'Action', value: 'Hello' }], 'aoconnect')
console.log('reply:', greeted.Messages[0].Data)

// a dry-run reads the state and keeps nothing; Owner says who asks (only the owner's Eval runs)
const read = await ao.dryrun({ process: pid, Owner: owner, tags: [{ name: 'Action', value: 'Eval' }],
  data: '#Handlers.list' })
console.log('handlers:', read.Output.data)
