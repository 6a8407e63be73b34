// The real @permaweb/aoconnect in MODE: 'mainnet' (HyperBEAM's API) against a tfao node.
// Environment (set by tests/test_hyperbeam_aoconnect.py): TFAO_MAINNET_URL (the node's URL),
// TFAO_MODULE (its default module id), TFAO_SCHEDULER (its address), TFAO_WALLETS (a JSON file holding
// a list of JWKs; the first owns the processes), TFAO_OWNER (its address).
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { connect, createSigner } from '@permaweb/aoconnect'

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`environment variable ${name} is required`)
  return value
}

{
  const URL = env('TFAO_MAINNET_URL')
  const [ownerJwk, strangerJwk] = JSON.parse(readFileSync(env('TFAO_WALLETS'), 'utf8'))
  const ao = connect({ MODE: 'mainnet', URL, signer: createSigner(ownerJwk) })
  const strangerAo = connect({ MODE: 'mainnet', URL, signer: createSigner(strangerJwk) })
  const legacy = connect({ MU_URL: URL, CU_URL: URL, GATEWAY_URL: URL })
  const ownerAddress = env('TFAO_OWNER')
  const module = env('TFAO_MODULE')
  let pid

  const send = async (client, tags, data) => {
    const slot = await client.message({ process: pid, tags, data })
    return { slot, result: await client.result({ process: pid, slot }) }
  }
  const evalAs = (client, code) => send(client, [{ name: 'Action', value: 'Eval' }], code)
  const dryEval = (code) => ao.dryrun({ process: pid, data: code, tags: [{ name: 'Action', value: 'Eval' }] })

  // Runs `call` with every request body or header passed through `tamper`; returns the statuses seen.
  const tampering = async (tamper, call) => {
    const realFetch = globalThis.fetch
    const statuses = []
    globalThis.fetch = async (url, options) => {
      const response = await realFetch(url, tamper(options))
      statuses.push(response.status)
      return response
    }
    try {
      await call().catch(() => {})
    } finally {
      globalThis.fetch = realFetch
    }
    return statuses
  }
  const flipLastByte = (options) => {
    if (!options?.body) return options
    const body = Buffer.from(options.body)
    body[body.length - 1] ^= 1
    return { ...options, body }
  }

  before(async () => {
    pid = await ao.spawn({ module, tags: [{ name: 'Name', value: 'mainnet-test' }] })
    assert.match(pid, /^[A-Za-z0-9_-]{43}$/)
  })

  test('spawn with an explicit scheduler', async () => {
    const explicit = connect({ MODE: 'mainnet', URL, signer: createSigner(ownerJwk), SCHEDULER: env('TFAO_SCHEDULER') })
    const other = await explicit.spawn({ module })
    assert.match(other, /^[A-Za-z0-9_-]{43}$/)
    assert.notEqual(other, pid)
  })

  test('an Eval message gets a slot and its result', async () => {
    const { slot, result } = await evalAs(ao, 'return 1 + 41')
    assert.equal(typeof slot, 'number')
    assert.equal(result.Error, undefined)
    assert.equal(result.Output.data, '42')
    const next = await evalAs(ao, 'return 2')
    assert.equal(next.slot, slot + 1)
  })

  test('a Ping handler answers through msg.reply', async () => {
    const added = await evalAs(ao, 'Handlers.add("Ping", "Ping", function (msg) msg.reply({ Data = "Pong" }) end)')
    assert.equal(added.result.Error, undefined)
    const { result } = await send(ao, [{ name: 'Action', value: 'Ping' }])
    assert.equal(result.Messages.length, 1)
    assert.equal(result.Messages[0].Data, 'Pong')
    assert.equal(result.Messages[0].Target, ownerAddress)
  })

  test('a dry-run sees the state and changes nothing', async () => {
    await evalAs(ao, 'Counter = 7')
    assert.equal((await dryEval('return Counter')).Output.data, '7')
    assert.equal((await dryEval('Counter = 100; return Counter')).Output.data, '100')
    assert.equal((await dryEval('return Counter')).Output.data, '7')
  })

  test('results answers the result at the current slot', async () => {
    const { slot } = await evalAs(ao, 'return "last"')
    const page = await ao.results({ process: pid })
    assert.equal(page.edges.length, 1)
    assert.equal(page.edges[0].cursor, String(slot))
    assert.equal(page.edges[0].node.Output.data, 'last')
  })

  test('an Eval from a wallet that is not the Owner does nothing', async () => {
    await evalAs(strangerAo, 'Stolen = true; return "stolen"')
    assert.equal((await dryEval('return tostring(Stolen)')).Output.data, 'nil')
  })

  test('a syntax error comes back as a string Error', async () => {
    const { result } = await evalAs(ao, 'return (')
    assert.equal(typeof result.Error, 'string')
    assert.equal((await evalAs(ao, 'return "alive"')).result.Output.data, 'alive')
  })

  test('tampered items are refused with 4xx and change nothing', async () => {
    const before = await ao.results({ process: pid })
    const spawned = await tampering(flipLastByte, () => ao.spawn({ module }))
    const pushed = await tampering(flipLastByte, () => ao.message({ process: pid, data: 'Hacked = true' }))
    const read = await tampering(flipLastByte, () => dryEval('return 1'))
    assert.deepEqual([spawned.slice(1), pushed, read], [[400], [400], [400]])  // spawn first asks the address
    const after = await ao.results({ process: pid })
    assert.equal(after.edges[0].cursor, before.edges[0].cursor)
  })

  test('a request() signed with HTTP message signatures is a message from the signer', async () => {
    const response = await ao.request({
      path: `/${pid}~process@1.0/push`, method: 'POST', target: pid, type: 'Message', action: 'Eval',
      data: 'Signed = 42'
    })
    assert.equal(response.status, 200, await response.clone().text())
    const { slot } = await response.json()
    assert.equal((await ao.result({ process: pid, slot })).Error, undefined)
    assert.equal((await dryEval('return Signed')).Output.data, '42')
    const stranger = await strangerAo.request({
      path: `/${pid}~process@1.0/push`, method: 'POST', target: pid, action: 'Eval', data: 'Signed = 0'
    })
    await ao.result({ process: pid, slot: (await stranger.json()).slot })
    assert.equal((await dryEval('return Signed')).Output.data, '42')
  })

  test('a badly signed request() is refused', async () => {
    const altered = (options) => ({ ...options, headers: { ...options.headers, data: 'Signed = -1' } })
    const statuses = await tampering(altered, () => ao.request({
      path: `/${pid}~process@1.0/push`, method: 'POST', target: pid, action: 'Eval', data: 'Signed = 1'
    }))
    assert.deepEqual(statuses, [400])
    assert.equal((await dryEval('return Signed')).Output.data, '42')
  })

  test('request() quirks: a "?" sent as %3F still routes, a dropped body is refused clearly', async () => {
    const now = await ao.request({ path: `/${pid}~process@1.0/now?pretty=1`, method: 'GET' })
    assert.equal(now.status, 200)
    assert.equal(typeof (await now.json()).raw.Output, 'object')
    const dropped = await ao.request({
      path: `/${pid}~process@1.0/push`, method: 'POST', target: pid, action: 'Eval', data: 'A = 1\nB = 2'
    })
    assert.equal(dropped.status, 400)
    assert.match((await dropped.json()).error, /did not arrive/)
  })

  test('one process through both APIs', async () => {
    const message = await legacy.message({
      process: pid, signer: createSigner(ownerJwk), tags: [{ name: 'Action', value: 'Eval' }], data: 'Both = "legacy"'
    })
    await legacy.result({ process: pid, message })
    assert.equal((await dryEval('return Both')).Output.data, 'legacy')
    await evalAs(ao, 'Both = "mainnet"')
    const read = await legacy.dryrun({
      process: pid, Owner: ownerAddress, data: 'return Both', tags: [{ name: 'Action', value: 'Eval' }]
    })
    assert.equal(read.Output.data, 'mainnet')
  })
}
