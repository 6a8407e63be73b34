// Round trips through the real aoconnect: the client side of bench/node.py.
// Environment: MU_URL, CU_URL, GATEWAY_URL, BENCH_MODULE, BENCH_SCHEDULER, BENCH_WALLET (a JWK file),
// BENCH_OWNER (its address), BENCH_TAGS (extra spawn tags, JSON [{name, value}]), BENCH_MESSAGES,
// BENCH_CLIENTS, BENCH_DRYRUNS, BENCH_WORKERS; BENCH_MODE=mainnet with BENCH_URL drives HyperBEAM's API
// instead of the legacy units. Prints one JSON object with the figures.
//
// The concurrent clients are spread over BENCH_WORKERS threads (default: one per core), each with its own
// aoconnect and event loop: clients are separate programs in real use, and aoconnect signs every message
// with RSA-4096 on its one JavaScript thread, so 50 clients in one thread measure that thread, not the node.
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { connect, createDataItemSigner, createSigner } from '@permaweb/aoconnect'

const env = process.env
const jwk = JSON.parse(readFileSync(env.BENCH_WALLET, 'utf8'))
const mainnet = env.BENCH_MODE === 'mainnet'
const ao = mainnet
  ? connect({ MODE: 'mainnet', URL: env.BENCH_URL, SCHEDULER: env.BENCH_SCHEDULER, signer: createSigner(jwk) })
  : connect({ MU_URL: env.MU_URL, CU_URL: env.CU_URL, GATEWAY_URL: env.GATEWAY_URL })
const signer = createDataItemSigner(jwk)
const ping = [{ name: 'Action', value: 'Ping' }]

const seconds = (start) => Number(process.hrtime.bigint() - start) / 1e9
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]

async function timed (f) {
  const start = process.hrtime.bigint()
  const value = await f()
  return [seconds(start), value]
}

async function roundTrip (pid, tags, data) {
  if (mainnet) {
    const slot = await ao.message({ process: pid, tags, data })
    return ao.result({ process: pid, slot })
  }
  const message = await ao.message({ process: pid, signer, tags, data })
  return ao.result({ process: pid, message })
}

async function dryrunPing (pid) {
  const answer = await ao.dryrun({ process: pid, tags: ping, Owner: env.BENCH_OWNER })
  if (answer.Messages?.[0]?.Data !== 'Pong') throw new Error(`dry-run Ping: ${JSON.stringify(answer)}`)
}

// run `total` calls of f with `width` of them in flight; returns the elapsed seconds
async function concurrently (total, width, f) {
  let next = 0
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < total) { next++; await f() }
  }))
  return seconds(start)
}

const phases = { ping: (pid) => roundTrip(pid, ping), dryrun: dryrunPing }

if (!isMainThread) {
  // a worker: runs its share of a phase when asked, then reports
  parentPort.on('message', async ({ phase, total, width }) => {
    try {
      await concurrently(total, width, () => phases[phase](workerData.pid))
      parentPort.postMessage({ done: true })
    } catch (error) {
      parentPort.postMessage({ error: String(error?.stack || error) })
    }
  })
} else {
  await main()
}

// `total` calls of a phase by `width` clients spread over the workers; returns the elapsed seconds
async function spread (workers, phase, total, width) {
  const share = (n, i) => Math.floor(n * (i + 1) / workers.length) - Math.floor(n * i / workers.length)
  const start = process.hrtime.bigint()
  await Promise.all(workers.map((worker, i) => new Promise((resolve, reject) => {
    worker.once('message', (reply) => reply.error ? reject(new Error(reply.error)) : resolve())
    worker.postMessage({ phase, total: share(total, i), width: share(width, i) })
  })))
  return seconds(start)
}

function summary (latencies) {
  const sorted = [...latencies].sort((a, b) => a - b)
  return { p50_ms: percentile(sorted, 0.5) * 1000, p95_ms: percentile(sorted, 0.95) * 1000 }
}

async function main () {
  const messages = Number(env.BENCH_MESSAGES || 200)
  const clients = Number(env.BENCH_CLIENTS || 50)
  const dryruns = Number(env.BENCH_DRYRUNS || 500)
  const workerCount = Math.max(1, Math.min(clients, Number(env.BENCH_WORKERS || availableParallelism())))

  const [spawnSeconds, pid] = await timed(async () => {
    const id = await ao.spawn({
      module: env.BENCH_MODULE, scheduler: env.BENCH_SCHEDULER, signer, tags: JSON.parse(env.BENCH_TAGS || '[]')
    })
    await roundTrip(id, [{ name: 'Action', value: 'Eval' }], 'return 1')
    return id
  })
  const added = await roundTrip(pid, [{ name: 'Action', value: 'Eval' }],
    'Handlers.add("Ping", "Ping", function (msg) msg.reply({ Data = "Pong" }) end)')
  if (added.Error) throw new Error(`adding the Ping handler failed: ${added.Error}`)
  const check = await roundTrip(pid, ping)
  if (check.Messages?.[0]?.Data !== 'Pong') throw new Error(`Ping did not answer Pong: ${JSON.stringify(check)}`)

  const evals = []
  for (let i = 0; i < 20; i++) evals.push((await timed(() => roundTrip(pid, [{ name: 'Action', value: 'Eval' }], '1+41')))[0])

  const latencies = []
  const sequential = await concurrently(messages, 1, async () => latencies.push((await timed(() => roundTrip(pid, ping)))[0]))

  const workers = Array.from({ length: workerCount }, () => new Worker(new URL(import.meta.url), { workerData: { pid } }))
  try {
    await spread(workers, 'dryrun', workerCount, workerCount) // each worker's aoconnect warmed once
    // a server that fails under concurrent clients still has its sequential figures: the failed phase's
    // figure is null and its error is reported
    const failures = {}
    const rate = async (figure, phase, total) => {
      try {
        return total / await spread(workers, phase, total, clients)
      } catch (error) {
        failures[figure] = String(error?.message || error).replace(/<[^>]*>|&[#\w]+;/g, ' ').replace(/\s+/g, ' ').slice(0, 300)
        return null
      }
    }
    const concurrentRate = await rate('messages_per_second_concurrent', 'ping', messages)
    const dryrunRate = await rate('dryruns_per_second', 'dryrun', dryruns)
    console.log(JSON.stringify({
      cold_spawn_ms: spawnSeconds * 1000,
      eval_p50_ms: summary(evals).p50_ms,
      round_trip: summary(latencies),
      messages_per_second: messages / sequential,
      messages_per_second_concurrent: concurrentRate,
      dryruns_per_second: dryrunRate,
      failures,
      messages,
      clients,
      client_threads: workerCount,
      dryruns
    }))
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()))
  }
}
