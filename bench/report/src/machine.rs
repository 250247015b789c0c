//! What machine the figures were measured on (from `/proc`).

/// Cores, CPU model, memory, kernel, load when the run started.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) cpu: String,
    pub(crate) ram_gib: f64,
    pub(crate) kernel: String,
    pub(crate) load: String,
}

impl Machine {
    /// Reads `/proc`; what cannot be read says "unknown".
    pub(crate) fn read() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        let ram_kib: f64 = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
        let load = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu,
            ram_gib: ram_kib / 1024.0 / 1024.0,
            kernel: if kernel.is_empty() {
                "unknown".to_owned()
            } else {
                kernel
            },
            load,
        }
    }

    /// Whether the 1-minute load average at start exceeded the core count.
    pub(crate) fn busy(&self) -> bool {
        let load: f64 = self
            .load
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        load > self.cores as f64
    }

    /// One line: `2 cores (Model), 23.4 GiB RAM, Linux 6.1, load 3.1 2.9 2.5`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB RAM, Linux {}, load average at start {}",
            self.cores, self.cpu, self.ram_gib, self.kernel, self.load
        )
    }
}

/// Peak resident memory of this process (`VmHWM`), in MiB; `None` if unreadable.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM:")
}

/// Resident memory of this process now (`VmRSS`), in MiB; `None` if unreadable.
pub(crate) fn rss_mib() -> Option<f64> {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> Option<f64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kib| kib / 1024.0)
}

/// Resets the peak resident memory (`VmHWM`) to the current resident size, so the
/// next reading belongs to what runs after. `false` where the kernel refuses.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
