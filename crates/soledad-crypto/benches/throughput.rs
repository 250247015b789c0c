//! Throughput of the document envelope and the blob stream (DESIGN §10).
//!
//! `cargo bench -p soledad-crypto --bench throughput`
//!
//! Prints medians, both per CPU-second of this thread (the "per core" figure, robust
//! on a shared machine) and per wall-clock second. Blob streams are generated on the fly and written to a sink, so a
//! 1 GiB blob is never held in memory; peak RSS (VmHWM) is printed after the 64 MiB
//! and after the 1 GiB runs to show it does not grow with the blob size.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{self, Read};
use std::time::{Duration, Instant};

use soledad_crypto::{EncryptReader, SEGMENT_SIZE, StorageSecret, decrypt_blob, encrypt_blob};

/// Endless deterministic plaintext, `remaining` bytes long.
struct Generator {
    pattern: Vec<u8>,
    pos: usize,
    remaining: u64,
}

impl Generator {
    fn new(len: u64) -> Self {
        Self {
            pattern: (0..SEGMENT_SIZE + 251).map(|i| (i % 251) as u8).collect(),
            pos: 0,
            remaining: len,
        }
    }
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(SEGMENT_SIZE)
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.pattern[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % 251;
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Time this thread has spent on a CPU (`/proc/thread-self/schedstat`, first field,
/// nanoseconds). The machine running the benches is shared, so next to wall-clock
/// figures we report throughput per CPU-second, i.e. per core actually used.
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

/// Runs `f`, returning (wall, cpu) durations.
fn timed(f: impl FnOnce()) -> (Duration, Duration) {
    let (wall, cpu) = (Instant::now(), cpu_time());
    f();
    (wall.elapsed(), cpu_time().saturating_sub(cpu))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn gbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn bench_stream(secret: &StorageSecret, size: u64, runs: usize) {
    let key = secret.blob_key();
    let (mut enc_wall, mut enc_cpu, mut both_wall, mut both_cpu) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (wall, cpu) = timed(|| {
            encrypt_blob(&key, "bench", size, Generator::new(size), io::sink()).unwrap();
        });
        enc_wall.push(wall);
        enc_cpu.push(cpu);
        // Encrypt and decrypt in one pipeline (the ciphertext is never stored).
        let (wall, cpu) = timed(|| {
            let reader = EncryptReader::new(&key, "bench", size, Generator::new(size)).unwrap();
            let preamble = decrypt_blob(&key, "bench", reader, io::sink()).unwrap();
            assert_eq!(preamble.plaintext_size(), size);
        });
        both_wall.push(wall);
        both_cpu.push(cpu);
    }
    let (enc_w, enc_c) = (median(enc_wall), median(enc_cpu));
    let (both_w, both_c) = (median(both_wall), median(both_cpu));
    let (dec_w, dec_c) = (both_w.saturating_sub(enc_w), both_c.saturating_sub(enc_c));
    println!(
        "blob {:>5} MiB: encrypt {:>5.2} GB/s per core ({:>5.2} GB/s wall, {:.2?}); \
         decrypt {:>5.2} GB/s per core ({:>5.2} GB/s wall; = pipeline − encrypt); peak RSS {} KiB",
        size >> 20,
        gbps(size, enc_c),
        gbps(size, enc_w),
        enc_w,
        gbps(size, dec_c),
        gbps(size, dec_w),
        peak_rss_kib()
    );
}

fn bench_envelope(secret: &StorageSecret, size: usize) {
    let key = secret.doc_key();
    let json = format!("{{\"data\": \"{}\"}}", "x".repeat(size - 12));
    let envelope = key.seal("D-bench", "replica:1", &json).unwrap();
    // ≈ 50 MB of work per batch: the schedstat clock advances in scheduler ticks.
    let batch = (50_000_000 / size).max(20);
    let (mut seal_times, mut open_times) = (Vec::new(), Vec::new());
    for _ in 0..9 {
        let (_, cpu) = timed(|| {
            for _ in 0..batch {
                std::hint::black_box(
                    key.seal("D-bench", "replica:1", std::hint::black_box(&json))
                        .unwrap(),
                );
            }
        });
        seal_times.push(cpu / batch as u32);
        let (_, cpu) = timed(|| {
            for _ in 0..batch {
                std::hint::black_box(
                    key.open("D-bench", "replica:1", std::hint::black_box(&envelope))
                        .unwrap(),
                );
            }
        });
        open_times.push(cpu / batch as u32);
    }
    let seal = median(seal_times);
    let open = median(open_times);
    println!(
        "envelope {:>7} B: seal {:>9.2?} ({:>5.2} GB/s), open {:>9.2?} ({:>5.2} GB/s) CPU time per op; envelope {} B",
        size,
        seal,
        gbps(size as u64, seal),
        open,
        gbps(size as u64, open),
        envelope.len()
    );
}

fn main() {
    let secret = StorageSecret::from_bytes([1; 64]);
    println!("segment size {SEGMENT_SIZE} B; single thread; medians");
    bench_stream(&secret, 64 << 20, 7);
    bench_stream(&secret, 1 << 30, 5);
    for size in [1_000, 10_000, 100_000, 1_000_000] {
        bench_envelope(&secret, size);
    }
    let kdf = soledad_crypto::KdfParams::interactive();
    let pass = secrecy::SecretString::from("benchmark passphrase");
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (w, c) = timed(|| {
            soledad_crypto::backup_id("uuid", &pass, kdf).unwrap();
        });
        wall.push(w);
        cpu.push(c);
    }
    println!(
        "scrypt interactive (log_n={}, r={}, p={}): {:.2?} CPU ({:.2?} wall) per derivation",
        kdf.log_n,
        kdf.r,
        kdf.p,
        median(cpu),
        median(wall)
    );
}
