#!/usr/bin/env node
// The peer of `scripts/bench-report` (issue 15): what a user would pick instead of
// Soledad. pouchdb-server on disk (LevelDB) on a loopback port, two PouchDB
// "devices" (in-memory adapter), plain and with the ComDB encryption plugin.
//
// node peer.js [--runs K] [--live-writes N] [--scenarios transfer,live]
//
// Prints one JSON line per figure on stdout:
//   {"scenario":"transfer","system":"pouchdb","count":1000,"size":10240,
//    "write_ms":..,"upload_ms":..,"download_ms":..,"total_ms":..,"runs":K}
//   {"scenario":"live_latency","system":"pouchdb+comdb","p50_ms":..,"p90_ms":..,"max_ms":..,"n":..}
// `total_ms` is end to end: the local write on device A, A → server, server → B
// (for ComDB the write includes encrypting, the download decrypting), the medians
// of K runs each. Progress goes to stderr.
'use strict'

const { spawn } = require('child_process')
const crypto = require('crypto')
const fs = require('fs')
const http = require('http')
const net = require('net')
const os = require('os')
const path = require('path')

const PouchDB = require('pouchdb')
PouchDB.plugin(require('pouchdb-adapter-memory'))
PouchDB.plugin(require('comdb'))

const TRANSFERS = [[1000, 10 * 1024], [100, 100 * 1024], [10, 1024 * 1024]]
const PASSWORD = 'bench passphrase'

function arg (name, fallback) {
  const i = process.argv.indexOf(name)
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback
}

function log (...parts) {
  process.stderr.write(`[peer] ${parts.join(' ')}\n`)
}

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function get (url) {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)) })
      .on('error', reject)
  })
}

async function startServer (dir) {
  const port = await freePort()
  const bin = require.resolve('pouchdb-server/bin/pouchdb-server')
  const child = spawn(process.execPath, [bin, '-p', String(port), '-o', '127.0.0.1', '-d', dir, '-n', '--no-color'], {
    cwd: dir,
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60000
  for (;;) {
    try {
      if (await get(url) === 200) break
    } catch (_) {}
    if (Date.now() > deadline) throw new Error('pouchdb-server did not start')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { url, child }
}

// A document of about `size` bytes of incompressible text, as the Soledad runner makes.
function body (size) {
  return crypto.randomBytes(Math.ceil(size * 3 / 4)).toString('base64').slice(0, size)
}

let serial = 0
function fresh (prefix) {
  serial += 1
  return `${prefix}-${process.pid}-${serial}`
}

// Two devices on one remote database: [a, b], with ComDB when `encrypted`.
async function devices (serverUrl, encrypted) {
  const remoteName = `${serverUrl}/${fresh('bench')}`
  const a = new PouchDB(fresh('a'), { adapter: 'memory' })
  const b = new PouchDB(fresh('b'), { adapter: 'memory' })
  if (encrypted) {
    await a.setPassword(PASSWORD, { name: fresh('a-enc'), opts: { adapter: 'memory' } })
    const key = await a.exportComDB()
    await b.importComDB(PASSWORD, key, { name: fresh('b-enc'), opts: { adapter: 'memory' } })
  }
  const remote = new PouchDB(remoteName)
  return { a, b, remote }
}

async function transferOnce (serverUrl, encrypted, count, size) {
  const { a, b, remote } = await devices(serverUrl, encrypted)
  const docs = []
  for (let i = 0; i < count; i++) {
    docs.push({ _id: `doc-${String(i).padStart(6, '0')}`, body: body(size) })
  }
  const t0 = performance.now()
  await a.bulkDocs(docs)
  const t1 = performance.now()
  await a.replicate.to(remote)
  const t2 = performance.now()
  await b.replicate.from(remote)
  const t3 = performance.now()
  const info = await b.info()
  if (info.doc_count !== count) throw new Error(`device B has ${info.doc_count} of ${count} documents`)
  await remote.destroy()
  await a.destroy()
  await b.destroy()
  return { write: t1 - t0, up: t2 - t1, down: t3 - t2 }
}

function median (values) {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.floor(sorted.length / 2)]
}

function percentile (sorted, p) {
  const i = Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)
  return sorted[Math.max(0, i)]
}

async function liveLatency (serverUrl, encrypted, writes) {
  const { a, b, remote } = await devices(serverUrl, encrypted)
  const up = a.replicate.to(remote, { live: true, retry: true })
  const down = b.replicate.from(remote, { live: true, retry: true })
  const waiting = new Map()
  const feed = b.changes({ live: true, since: 'now' })
  feed.on('change', (change) => {
    const done = waiting.get(change.id)
    if (done) { waiting.delete(change.id); done(performance.now()) }
  })
  const latencies = []
  for (let i = 0; i < writes; i++) {
    const id = `live-${i}`
    const arrived = new Promise((resolve, reject) => {
      waiting.set(id, resolve)
      setTimeout(() => reject(new Error(`write ${i} did not arrive in 30 s`)), 30000).unref()
    })
    const t0 = performance.now()
    await a.put({ _id: id, body: body(1024) })
    latencies.push(await arrived - t0)
    // Writes spaced as a user's are, not back to back.
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  feed.cancel()
  up.cancel()
  down.cancel()
  await remote.destroy()
  const sorted = [...latencies].sort((x, y) => x - y)
  return {
    p50_ms: percentile(sorted, 0.5),
    p90_ms: percentile(sorted, 0.9),
    max_ms: sorted[sorted.length - 1],
    n: sorted.length
  }
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

async function main () {
  const runs = Number(arg('--runs', '3'))
  const writes = Number(arg('--live-writes', '30'))
  const scenarios = arg('--scenarios', 'transfer,live').split(',')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soledad-peer-'))
  const server = await startServer(dir)
  try {
    for (const encrypted of [false, true]) {
      const system = encrypted ? 'pouchdb+comdb' : 'pouchdb'
      if (scenarios.includes('transfer')) {
        for (const [count, size] of TRANSFERS) {
          const samples = []
          for (let r = 0; r < runs; r++) samples.push(await transferOnce(server.url, encrypted, count, size))
          const write = median(samples.map((s) => s.write))
          const up = median(samples.map((s) => s.up))
          const down = median(samples.map((s) => s.down))
          const total = median(samples.map((s) => s.write + s.up + s.down))
          log(system, `${count} x ${size} B: total ${total.toFixed(0)} ms`)
          emit({ scenario: 'transfer', system, count, size, write_ms: write, upload_ms: up, download_ms: down, total_ms: total, runs })
        }
      }
      if (scenarios.includes('live')) {
        const live = await liveLatency(server.url, encrypted, writes)
        log(system, `live p50 ${live.p50_ms.toFixed(0)} ms`)
        emit({ scenario: 'live_latency', system, ...live })
      }
    }
  } finally {
    server.child.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

main().catch((err) => {
  process.stderr.write(`[peer] ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
})
