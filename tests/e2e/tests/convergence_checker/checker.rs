//! One seeded run: three devices make random creates, edits, deletes, conflict
//! resolutions and syncs over a small id pool, against the real server binary that
//! is restarted and SIGKILLed mid-sync at random; then every device syncs until
//! quiet, and the oracles are checked.
//!
//! Oracles:
//! - no sync fails with anything but a transport error caused by a killed server
//!   (`Network` always, a truncated response only when a kill happened during it);
//! - after quiescing, every device holds the same live and deleted ids with the
//!   same revision and content;
//! - no write vanished: for every revision any device wrote, the final revision of
//!   that document, or a conflict some device keeps, dominates or equals it;
//! - after every device resolves its conflicts in turn and all sync until quiet, no
//!   device has a conflict left and the final revisions dominate every write.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use soledad_client::{Error, Soledad, StoreError, SyncReport};
use soledad_store::{ClockOrdering, VectorClock};

use crate::harness::{Proxy, Server, device};

const DEVICES: usize = 3;
const IDS: [&str; 6] = ["doc0", "doc1", "doc2", "doc3", "doc4", "doc5"];
/// A sync that takes longer than this is a hang (the checker fails the seed).
const SYNC_TIMEOUT: Duration = Duration::from_secs(60);
/// Full rounds (every device syncs once) allowed to reach a quiet round.
const MAX_QUIESCE_ROUNDS: usize = 10;
/// Attempts per sync while quiescing (a pooled connection to a killed server
/// fails once).
const QUIESCE_ATTEMPTS: usize = 4;

/// SplitMix64: small, seedable, good enough to pick steps.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn index(&mut self, n: usize) -> usize {
        usize::try_from(self.below(n as u64)).unwrap()
    }
}

/// What a seed did, for the summary.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub writes: usize,
    pub syncs: u64,
    pub kills: u64,
    pub restarts: u64,
    pub transport_errors: u64,
    pub merges: u64,
    /// Incoming revisions superseded by the local one (each a false integrity alarm
    /// before issue 16).
    pub superseded: u64,
    /// Rounds the final quiescing took (the last one quiet).
    pub quiesce_rounds: usize,
}

struct Run {
    rng: Rng,
    server: Server,
    proxy: Proxy,
    devices: Vec<Soledad>,
    homes: Vec<std::path::PathBuf>,
    /// Every revision written by any device: (doc id, rev).
    writes: Vec<(String, String)>,
    outcome: Outcome,
    log: Vec<String>,
    /// Bytes through the proxy of the last sync that completed.
    sync_bytes: u64,
    /// Per device: its last sync said converged and it wrote nothing since, so its
    /// next sync must send nothing.
    clean: Vec<bool>,
    /// Per device: the ids of its last few writes.
    recent: Vec<Vec<&'static str>>,
}

/// Runs `steps` random steps with `seed`; `Err` describes the broken oracle.
pub async fn run(dir: &Path, seed: u64, steps: usize) -> Result<Outcome, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = Server::start().await;
    let proxy = Proxy::start(&server).await;
    let mut run = Run {
        rng: Rng::new(seed),
        homes: (0..DEVICES)
            .map(|d| dir.join(format!("device{d}")))
            .collect(),
        devices: Vec::new(),
        server,
        proxy,
        writes: Vec::new(),
        outcome: Outcome::default(),
        log: Vec::new(),
        sync_bytes: 4000,
        clean: vec![false; DEVICES],
        recent: vec![Vec::new(); DEVICES],
    };
    // Opened in turn: the first makes the account's secret, the others fetch it.
    for d in 0..DEVICES {
        let dev = run.open(d).await;
        run.devices.push(dev);
    }
    let result = run.steps(steps).await;
    let result = match result {
        Ok(()) => run.check().await,
        Err(e) => Err(e),
    };
    if std::env::var("SOLEDAD_CHECKER_TRACE").is_ok_and(|v| v == "1") {
        eprintln!("seed {seed}:\n{}", run.log.join("\n"));
    }
    result.map(|()| run.outcome.clone()).map_err(|e| {
        let tail: Vec<&String> = run.log.iter().rev().take(40).rev().collect();
        format!("{e}\nlast steps:\n{tail:#?}")
    })
}

impl Run {
    async fn open(&self, d: usize) -> Soledad {
        device(
            &self.homes[d],
            &self.proxy.url(),
            &self.server.cert(),
            &self.server.token,
        )
        .await
    }

    async fn steps(&mut self, steps: usize) -> Result<(), String> {
        for step in 0..steps {
            if !self.server.is_alive() && self.rng.below(2) == 0 {
                self.log.push(format!("{step}: serve"));
                self.server.serve().await;
                self.outcome.restarts += 1;
            }
            let d = self.rng.index(DEVICES);
            match self.rng.below(100) {
                0..=34 => {
                    self.log.push(format!("{step}: write on {d}"));
                    self.write(d).await?;
                }
                35..=41 => {
                    self.log.push(format!("{step}: resolve on {d}"));
                    self.resolve_one(d).await?;
                }
                42..=71 => {
                    self.log.push(format!("{step}: sync {d}"));
                    self.sync(d).await?;
                }
                72..=79 => {
                    let n = 1 + self.rng.below(3);
                    self.log
                        .push(format!("{step}: sync {d} with {n} concurrent writes"));
                    self.sync_while_writing(d, n, false).await?;
                }
                80..=84 => {
                    let e = (d + 1 + self.rng.index(DEVICES - 1)) % DEVICES;
                    self.log.push(format!("{step}: sync {d} and {e} at once"));
                    self.sync_two(d, e).await?;
                }
                85..=93 => {
                    // Somewhere in a sync of the usual size (or just after it); half
                    // the time in its second half, where the server has applied the
                    // upload and answers.
                    let size = self.sync_bytes;
                    let bytes = if self.rng.below(2) == 0 {
                        1 + self.rng.below(size + size / 4)
                    } else {
                        size / 2 + self.rng.below(size / 2 + size / 4 + 1)
                    };
                    self.log
                        .push(format!("{step}: sync {d}, server killed after {bytes} B"));
                    self.proxy.arm_kill(bytes);
                    let kills = self.proxy.kills();
                    self.sync(d).await?;
                    self.proxy.disarm();
                    if self.proxy.kills() != kills && self.rng.below(2) == 0 {
                        // Issue 16's case: right after the restart, the device syncs
                        // again while the application rewrites what the cut exchange
                        // carried (the server may send back the older revisions).
                        self.log.push(format!(
                            "{step}: serve, sync {d} while rewriting its last ids"
                        ));
                        self.server.serve().await;
                        self.outcome.restarts += 1;
                        let n = 1 + self.rng.below(3);
                        self.sync_while_writing(d, n, true).await?;
                    }
                }
                94..=97 => {
                    self.log.push(format!("{step}: restart server"));
                    self.server.kill();
                    self.server.serve().await;
                    self.outcome.restarts += 1;
                }
                _ => {
                    self.log.push(format!("{step}: reopen device {d}"));
                    let old = self.devices.remove(d);
                    old.close().await.map_err(|e| e.to_string())?;
                    let reopened = self.open(d).await;
                    self.devices.insert(d, reopened);
                }
            }
        }
        Ok(())
    }

    fn remember(&mut self, d: usize, id: &'static str) {
        let recent = &mut self.recent[d];
        recent.retain(|r| *r != id);
        recent.push(id);
        if recent.len() > 3 {
            recent.remove(0);
        }
    }

    fn content(&mut self) -> serde_json::Value {
        // Few values, so that two devices often write equal contents (merges).
        json!({"v": self.rng.below(4)})
    }

    /// One write on device `d`: create, edit, revive or delete a random id.
    async fn write(&mut self, d: usize) -> Result<(), String> {
        let id = IDS[self.rng.index(IDS.len())];
        let content = self.content();
        let delete = self.rng.below(5) == 0;
        let written = write_doc(&self.devices[d], id, &content, delete).await?;
        if let Some(rev) = written {
            self.clean[d] = false;
            self.remember(d, id);
            self.log.push(format!("   {id} -> {rev}"));
            self.writes.push((id.to_owned(), rev.to_string()));
            self.outcome.writes += 1;
        }
        Ok(())
    }

    /// Resolves the conflicts of one conflicted id on device `d`, if any.
    async fn resolve_one(&mut self, d: usize) -> Result<(), String> {
        let start = self.rng.index(IDS.len());
        let pick = self.rng.below(3);
        for k in 0..IDS.len() {
            let id = IDS[(start + k) % IDS.len()];
            let dev = &self.devices[d];
            let conflicts = dev.get_doc_conflicts(id).await.map_err(|e| e.to_string())?;
            if conflicts.is_empty() {
                continue;
            }
            let revs: Vec<soledad_client::Rev> =
                conflicts.iter().filter_map(|c| c.rev.clone()).collect();
            // Keep one side's content (or a new one): both are u1db resolutions.
            let mut doc = dev
                .get_doc(id, true)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("conflicted document vanished")?;
            let chosen = usize::try_from(pick).unwrap() % conflicts.len();
            match conflicts[chosen].json() {
                Some(text) if pick < 2 => doc.set_json(text).map_err(|e| e.to_string())?,
                _ => {
                    let v = self.content();
                    doc.set_value(&v).map_err(|e| e.to_string())?;
                }
            }
            let dev = &self.devices[d];
            dev.resolve_doc(&mut doc, &revs)
                .await
                .map_err(|e| format!("resolve {id} on {d}: {e:?}"))?;
            let rev = doc.rev.clone().ok_or("resolved without a revision")?;
            self.clean[d] = false;
            self.log.push(format!("   resolved {id} -> {rev}"));
            self.writes.push((id.to_owned(), rev.to_string()));
            self.outcome.writes += 1;
            return Ok(());
        }
        Ok(())
    }

    async fn sync(&mut self, d: usize) -> Result<Option<SyncReport>, String> {
        let kills = self.proxy.kills();
        let before = self.proxy.forwarded();
        let result = timed_sync(&self.devices[d]).await?;
        let killed = self.proxy.kills() != kills;
        if result.is_ok() {
            self.sync_bytes = self.proxy.forwarded() - before;
        }
        self.account(d, result, killed, false)
    }

    fn account(
        &mut self,
        d: usize,
        result: Result<SyncReport, Error>,
        killed: bool,
        wrote_during: bool,
    ) -> Result<Option<SyncReport>, String> {
        self.outcome.syncs += 1;
        if killed {
            self.outcome.kills += 1;
        }
        let was_clean = std::mem::replace(&mut self.clean[d], false);
        match result {
            Ok(report) => {
                // Only the merges this sync made itself may leave.
                if was_clean && !wrote_during && report.sent > report.merged {
                    return Err(format!(
                        "device {d} converged and wrote nothing, yet its next sync sent \
                         {} document(s): {report:?}",
                        report.sent
                    ));
                }
                if !wrote_during && !report.converged && report.rounds < 3 {
                    return Err(format!(
                        "device {d} wrote nothing during its sync, which returned \
                         unconverged after {} exchange(s): {report:?}",
                        report.rounds
                    ));
                }
                // Writes made during the sync may land after its last look.
                self.clean[d] = report.converged && !wrote_during;
                self.outcome.merges += report.merged;
                self.outcome.superseded += report.superseded;
                self.log.push(format!(
                    "   {d}: sent {} received {} conflicts {} superseded {} merged {} rounds {} converged {}",
                    report.sent,
                    report.received,
                    report.conflicts,
                    report.superseded,
                    report.merged,
                    report.rounds,
                    report.converged
                ));
                Ok(Some(report))
            }
            Err(e) if is_transport(&e, killed) => {
                self.outcome.transport_errors += 1;
                self.log.push(format!("   {d}: transport error {e}"));
                Ok(None)
            }
            Err(e) => Err(format!(
                "sync of device {d} failed (server killed during it: {killed}): {e:?}"
            )),
        }
    }

    /// Syncs device `d` while it writes `n` times (ids among its own last writes
    /// when `rewrite`).
    async fn sync_while_writing(&mut self, d: usize, n: u64, rewrite: bool) -> Result<(), String> {
        let mut plan = Vec::new();
        for _ in 0..n {
            let id = match self.recent[d].len() {
                len if rewrite && len > 0 => self.recent[d][self.rng.index(len)],
                _ => IDS[self.rng.index(IDS.len())],
            };
            let content = self.content();
            let delete = self.rng.below(5) == 0;
            // Workload jitter, so that writes land in every phase of the sync.
            let pause = Duration::from_millis(self.rng.below(25));
            plan.push((id, content, delete, pause));
        }
        // When rewriting, the writes wait until the upload streams (so the sync took
        // its starting position), and the server's answer is held until they are
        // done: they land between the two, as in issue 16. Something is written
        // first so that the upload has a document to count.
        let knobs = self.proxy.knobs.clone();
        if rewrite {
            let others: Vec<&'static str> = IDS
                .into_iter()
                .filter(|id| !plan.iter().any(|(p, ..)| p == id))
                .collect();
            if let Some(id) = others.get(self.rng.index(others.len().max(1))) {
                let content = self.content();
                if let Some(rev) = write_doc(&self.devices[d], id, &content, false).await? {
                    self.log.push(format!("   {id} -> {rev}"));
                    self.clean[d] = false;
                    self.writes.push(((*id).to_owned(), rev));
                    self.outcome.writes += 1;
                }
            }
        }
        let kills = self.proxy.kills();
        let dev = &self.devices[d];
        let sync_done = AtomicBool::new(false);
        let sync = async {
            let result = timed_sync(dev).await;
            sync_done.store(true, Ordering::SeqCst);
            result
        };
        let writes = async {
            if rewrite {
                // Bounded: the sync ends (or times out) by itself.
                while dev.sync_stats().sent == 0 && !sync_done.load(Ordering::SeqCst) {
                    tokio::task::yield_now().await;
                }
                if !sync_done.load(Ordering::SeqCst) {
                    knobs.hold_download_at.store(1, Ordering::SeqCst);
                }
            }
            let mut done = Vec::new();
            for (id, content, delete, pause) in &plan {
                if !rewrite {
                    tokio::time::sleep(*pause).await;
                }
                match write_doc(dev, id, content, *delete).await {
                    Ok(Some(rev)) => done.push((*id, rev)),
                    Ok(None) => {}
                    Err(e) => {
                        knobs.hold_download_at.store(0, Ordering::SeqCst);
                        return Err(e);
                    }
                }
            }
            knobs.hold_download_at.store(0, Ordering::SeqCst);
            Ok::<_, String>(done)
        };
        let (result, done) = tokio::join!(sync, writes);
        let killed = self.proxy.kills() != kills;
        let done = done?;
        let wrote_during = !done.is_empty();
        for (id, rev) in done {
            self.log.push(format!("   {id} -> {rev} (during sync)"));
            self.remember(d, id);
            self.writes.push((id.to_owned(), rev.to_string()));
            self.outcome.writes += 1;
        }
        self.account(d, result?, killed, wrote_during)?;
        Ok(())
    }

    async fn sync_two(&mut self, d: usize, e: usize) -> Result<(), String> {
        let kills = self.proxy.kills();
        let (rd, re) = tokio::join!(timed_sync(&self.devices[d]), timed_sync(&self.devices[e]));
        let killed = self.proxy.kills() != kills;
        self.account(d, rd?, killed, false)?;
        self.account(e, re?, killed, false)?;
        Ok(())
    }

    /// Syncs every device in turn until a whole round moves nothing.
    async fn quiesce(&mut self) -> Result<usize, String> {
        self.proxy.disarm();
        if !self.server.is_alive() {
            self.server.serve().await;
            self.outcome.restarts += 1;
        }
        for round in 1..=MAX_QUIESCE_ROUNDS {
            let mut quiet = true;
            for d in 0..DEVICES {
                let report = self.sync_until_ok(d).await?;
                if report.sent + report.received + report.merged > 0 || !report.converged {
                    quiet = false;
                }
            }
            if quiet {
                return Ok(round);
            }
        }
        Err(format!(
            "no quiet round after {MAX_QUIESCE_ROUNDS} rounds of syncs without writes"
        ))
    }

    async fn sync_until_ok(&mut self, d: usize) -> Result<SyncReport, String> {
        for _ in 0..QUIESCE_ATTEMPTS {
            self.log.push(format!("quiesce: sync {d}"));
            if let Some(report) = self.sync(d).await? {
                return Ok(report);
            }
        }
        Err(format!(
            "device {d} could not sync {QUIESCE_ATTEMPTS} times with the server up"
        ))
    }

    async fn check(&mut self) -> Result<(), String> {
        self.outcome.quiesce_rounds = self.quiesce().await?;
        let states = self.states().await?;
        same_everywhere(&states)?;
        let conflicts = self.conflict_revs().await?;
        self.nothing_vanished(&states[0], &conflicts)?;

        // Every device resolves what it holds, in turn; then nothing is left.
        for d in 0..DEVICES {
            self.sync_until_ok(d).await?;
            for id in IDS {
                let dev = &self.devices[d];
                let found = dev.get_doc_conflicts(id).await.map_err(|e| e.to_string())?;
                if found.is_empty() {
                    continue;
                }
                let revs: Vec<soledad_client::Rev> =
                    found.iter().filter_map(|c| c.rev.clone()).collect();
                let mut doc = dev
                    .get_doc(id, true)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("conflicted document vanished")?;
                dev.resolve_doc(&mut doc, &revs)
                    .await
                    .map_err(|e| format!("final resolve of {id} on {d}: {e:?}"))?;
                let rev = doc.rev.clone().ok_or("resolved without a revision")?;
                self.clean[d] = false;
                self.writes.push((id.to_owned(), rev.to_string()));
            }
            self.sync_until_ok(d).await?;
        }
        self.quiesce().await?;
        let states = self.states().await?;
        same_everywhere(&states)?;
        let conflicts = self.conflict_revs().await?;
        if conflicts.values().any(|revs| !revs.is_empty()) {
            return Err(format!(
                "conflicts left after every device resolved in turn: {conflicts:?}"
            ));
        }
        self.nothing_vanished(&states[0], &conflicts)
    }

    async fn states(&self) -> Result<Vec<State>, String> {
        let mut out = Vec::new();
        for dev in &self.devices {
            let (_, docs) = dev.get_all_docs(true).await.map_err(|e| e.to_string())?;
            out.push(
                docs.into_iter()
                    .map(|doc| {
                        let json = doc.json().map(str::to_owned);
                        (
                            doc.doc_id.to_string(),
                            (doc.rev.map(String::from).unwrap_or_default(), json),
                        )
                    })
                    .collect(),
            );
        }
        Ok(out)
    }

    /// Every conflict revision any device keeps, by id.
    async fn conflict_revs(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for dev in &self.devices {
            for id in IDS {
                let found = dev.get_doc_conflicts(id).await.map_err(|e| e.to_string())?;
                out.entry(id.to_owned())
                    .or_default()
                    .extend(found.into_iter().filter_map(|c| c.rev.map(String::from)));
            }
        }
        Ok(out)
    }

    fn nothing_vanished(
        &self,
        state: &State,
        conflicts: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), String> {
        for (id, written) in &self.writes {
            let w = VectorClock::parse(written).map_err(|e| e.to_string())?;
            let covers = |rev: &str| {
                VectorClock::parse(rev).is_ok_and(|r| {
                    matches!(r.compare(&w), ClockOrdering::Newer | ClockOrdering::Equal)
                })
            };
            let current = state.get(id).map(|(rev, _)| rev.as_str());
            let kept = current.is_some_and(covers)
                || conflicts
                    .get(id)
                    .is_some_and(|revs| revs.iter().any(|r| covers(r)));
            if !kept {
                return Err(format!(
                    "write {id}@{written} vanished: final {current:?}, conflicts {:?}",
                    conflicts.get(id)
                ));
            }
        }
        Ok(())
    }
}

type State = BTreeMap<String, (String, Option<String>)>;

fn same_everywhere(states: &[State]) -> Result<(), String> {
    for (d, state) in states.iter().enumerate().skip(1) {
        if state != &states[0] {
            return Err(format!(
                "device {d} differs from device 0 after quiescing:\n0: {:?}\n{d}: {state:?}",
                states[0]
            ));
        }
    }
    Ok(())
}

/// A transport error a killed server explains.
fn is_transport(err: &Error, killed: bool) -> bool {
    match err {
        Error::Network(_) => true,
        Error::Protocol(_) => killed,
        _ => false,
    }
}

async fn timed_sync(dev: &Soledad) -> Result<Result<SyncReport, Error>, String> {
    tokio::time::timeout(SYNC_TIMEOUT, dev.sync())
        .await
        .map_err(|_| format!("a sync hung for {SYNC_TIMEOUT:?}"))
}

/// Writes `id` on `dev`: create if absent, revive a tombstone, else edit or delete.
/// `Ok(None)` when the write was refused for a reason a concurrent sync explains
/// (the document became conflicted or changed meanwhile).
async fn write_doc(
    dev: &Soledad,
    id: &str,
    content: &serde_json::Value,
    delete: bool,
) -> Result<Option<String>, String> {
    let current = dev.get_doc(id, true).await.map_err(|e| e.to_string())?;
    let result = match current {
        None => dev.create_doc(content, Some(id)).await.map(|d| d.rev),
        Some(doc) if doc.has_conflicts => return Ok(None),
        Some(mut doc) if delete && !doc.is_tombstone() => dev.delete_doc(&mut doc).await.map(Some),
        Some(mut doc) => {
            doc.set_value(content).map_err(|e| e.to_string())?;
            dev.put_doc(&mut doc).await.map(Some)
        }
    };
    match result {
        Ok(rev) => Ok(rev.map(String::from)),
        Err(Error::Store(StoreError::RevisionConflict | StoreError::ConflictedDoc)) => Ok(None),
        Err(e) => Err(format!("write of {id} failed: {e:?}")),
    }
}
