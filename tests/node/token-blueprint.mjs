// The token blueprint through the real @permaweb/aoconnect: load, Mint, Transfer, Balance, Balances.
// Run by tests/test_aos_token_aoconnect.py (not picked up by a plain `node --test`). Environment:
// MU_URL, CU_URL, GATEWAY_URL, TFAO_MODULE, TFAO_SCHEDULER, TFAO_WALLETS (JSON list of JWKs: owner,
// stranger), TFAO_OWNER, TFAO_STRANGER (their addresses), TFAO_TOKEN_LUA (the blueprint's source file).
// The node's wallet signs what processes send each other, so it is the process's Authority.
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { connect, createDataItemSigner } from '@permaweb/aoconnect'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`environment variable ${name} is required`)
  return value
}

const ao = connect({ MU_URL: env('MU_URL'), CU_URL: env('CU_URL'), GATEWAY_URL: env('GATEWAY_URL') })
const [ownerJwk, strangerJwk] = JSON.parse(readFileSync(env('TFAO_WALLETS'), 'utf8'))
const owner = createDataItemSigner(ownerJwk)
const stranger = createDataItemSigner(strangerJwk)
const [ownerAddress, strangerAddress] = [env('TFAO_OWNER'), env('TFAO_STRANGER')]
let pid

const send = async (signer, tags, data) => {
  const message = await ao.message({ process: pid, signer, tags, data })
  return ao.result({ process: pid, message })
}
const action = (name, extra = {}) =>
  [{ name: 'Action', value: name }, ...Object.entries(extra).map(([name, value]) => ({ name, value }))]
const tagsOf = (message) => Object.fromEntries(message.Tags.map((t) => [t.name, t.value]))

before(async () => {
  pid = await ao.spawn({ module: env('TFAO_MODULE'), scheduler: env('TFAO_SCHEDULER'), signer: owner,
    tags: [{ name: 'Name', value: 'token-test' }, { name: 'Authority', value: env('TFAO_SCHEDULER') }] })
  const loaded = await send(owner, action('Eval'), readFileSync(env('TFAO_TOKEN_LUA'), 'utf8'))
  assert.equal(loaded.Error, undefined)
})

test('mint, transfer and read balances as aos replies them', async () => {
  const initial = (10000n * 10n ** 12n)
  await send(owner, action('Eval'), 'Send({ Target = ao.id, Action = "Mint", Quantity = "5" })')
  await send(owner, action('Eval'),
    `Send({ Target = ao.id, Action = "Transfer", Recipient = "${ownerAddress}", Quantity = "1000" })`)

  const transfer = await send(owner, action('Transfer', { Recipient: strangerAddress, Quantity: '400' }))
  assert.equal(transfer.Error, undefined)
  const [debit, credit] = transfer.Messages.map(tagsOf)
  assert.equal(debit.Action, 'Debit-Notice')
  assert.equal(transfer.Messages[0].Target, ownerAddress)
  assert.equal(credit.Action, 'Credit-Notice')
  assert.equal(transfer.Messages[1].Target, strangerAddress)
  assert.equal(credit.Sender, ownerAddress)

  const balance = await send(stranger, action('Balance'))
  const reply = tagsOf(balance.Messages[0])
  assert.equal(reply.Balance, '400')
  assert.equal(reply.Account, strangerAddress)
  assert.equal(reply.Ticker, 'PNTS')
  assert.equal(balance.Messages[0].Data, '400')

  const balances = JSON.parse((await send(stranger, action('Balances'))).Messages[0].Data)
  assert.deepEqual(balances, {
    [pid]: String(initial + 5n - 1000n), [ownerAddress]: '600', [strangerAddress]: '400'
  })

  const refused = await send(stranger, action('Mint', { Quantity: '5' }))
  assert.equal(tagsOf(refused.Messages[0]).Action, 'Mint-Error')

  const dry = await ao.dryrun({ process: pid, Owner: strangerAddress, tags: action('Balance') })
  assert.equal(dry.Messages[0].Data, '400')
})
