// The real @permaweb/aoconnect against a tfao node.
// Environment (set by tests/test_aoconnect.py): MU_URL, CU_URL, GATEWAY_URL (the node's URL),
// TFAO_MODULE (the node's default module id), TFAO_SCHEDULER (the node's address),
// TFAO_WALLETS (a JSON file holding a list of JWKs; the first owns the process), TFAO_OWNER (its address).
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
const ownerAddress = env('TFAO_OWNER')
let pid

const send = async (signer, tags, data) => {
  const message = await ao.message({ process: pid, signer, tags, data })
  return { message, result: await ao.result({ process: pid, message }) }
}
const evalAs = (signer, code) => send(signer, [{ name: 'Action', value: 'Eval' }], code)
const dryEval = (code) => ao.dryrun({
  process: pid, Owner: ownerAddress, data: code, tags: [{ name: 'Action', value: 'Eval' }]
})

before(async () => {
  pid = await ao.spawn({
    module: env('TFAO_MODULE'),
    scheduler: env('TFAO_SCHEDULER'),
    signer: owner,
    tags: [{ name: 'Name', value: 'aoconnect-test' }]
  })
  assert.match(pid, /^[A-Za-z0-9_-]{43}$/)
})

test('an Eval message returns its value in Output.data', async () => {
  const { result } = await evalAs(owner, 'return 1 + 41')
  assert.equal(result.Error, undefined)
  assert.equal(result.Output.data, '42')
})

test('a Ping handler answers through msg.reply', async () => {
  const added = await evalAs(owner, `
    Handlers.add("Ping", "Ping", function (msg) msg.reply({ Data = "Pong" }) end)
    return "ok"`)
  assert.equal(added.result.Error, undefined)
  const { result } = await send(owner, [{ name: 'Action', value: 'Ping' }])
  assert.equal(result.Messages.length, 1)
  assert.equal(result.Messages[0].Data, 'Pong')
  assert.equal(result.Messages[0].Target, ownerAddress)
})

test('results pages forward from a cursor and backward with DESC', async () => {
  for (const n of [1, 2, 3]) await evalAs(owner, `Counter = ${n}`)
  const all = await ao.results({ process: pid, sort: 'ASC', limit: 1000 })
  assert.ok(all.edges.length >= 4)
  const first = await ao.results({ process: pid, sort: 'ASC', limit: 2 })
  assert.equal(first.edges.length, 2)
  const rest = await ao.results({ process: pid, from: first.edges[1].cursor, sort: 'ASC', limit: 1000 })
  assert.deepEqual([...first.edges, ...rest.edges].map((e) => e.cursor), all.edges.map((e) => e.cursor))
  const latest = await ao.results({ process: pid, sort: 'DESC', limit: 1 })
  assert.equal(ordinate(latest.edges[0].cursor), ordinate(all.edges.at(-1).cursor))
})

const ordinate = (cursor) => JSON.parse(atob(cursor)).ordinate

test('a dry-run sees the state and changes nothing', async () => {
  await evalAs(owner, 'Counter = 7')
  const before = await ao.results({ process: pid, sort: 'DESC', limit: 1000 })
  assert.equal((await dryEval('return Counter')).Output.data, '7')
  assert.equal((await dryEval('Counter = 100; return Counter')).Output.data, '100')
  assert.equal((await dryEval('return Counter')).Output.data, '7')
  const after = await ao.results({ process: pid, sort: 'DESC', limit: 1000 })
  assert.equal(after.edges.length, before.edges.length)
})

test('an Eval from a wallet that is not the Owner does nothing', async () => {
  await evalAs(stranger, 'Stolen = true; return "stolen"')
  assert.equal((await dryEval('return tostring(Stolen)')).Output.data, 'nil')
})

test('require("transformers") loads inside a process', async () => {
  const { result } = await evalAs(owner, 'return type(require("transformers").bert.encode_text)')
  assert.equal(result.Error, undefined)
  assert.equal(result.Output.data, 'function')
})
