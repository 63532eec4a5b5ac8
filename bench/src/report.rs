//! What every bench report is made of: latency histograms and their summaries, sets of
//! event sequence numbers (for loss and duplicates), the machine's description, process
//! CPU and memory, and the progress line shown while a run goes on.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, sigfig ≤ 5).
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// A duration in whole microseconds, saturating.
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The quantiles a latency report gives, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// How many latencies were recorded.
    pub count: u64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// 99.9th percentile, ms.
    pub p999_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

impl Latency {
    /// Summarises a histogram of microseconds; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// `p50 0.41 · p90 0.80 · p99 2.10 · p99.9 5.00 · max 9.30 ms`.
    pub fn line(&self) -> String {
        format!(
            "p50 {:.2} · p90 {:.2} · p99 {:.2} · p99.9 {:.2} · max {:.2} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// A set of event sequence numbers (the number at the end of a bench event's id), kept as
/// a bitmap: a million events cost 128 KiB, and a lookup is one shift.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `seq`; returns whether it was new (false: a duplicate).
    pub fn insert(&mut self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if word >= self.words.len() {
            self.words.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        let new = self.words[word] & mask == 0;
        self.words[word] |= mask;
        self.len += u64::from(new);
        new
    }

    /// Whether `seq` is in the set.
    pub fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1u64 << (seq % 64)) != 0)
    }

    /// How many distinct numbers it holds.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds every number of `other`.
    pub fn union(&mut self, other: &SeqSet) {
        if other.words.len() > self.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (mine, theirs) in self.words.iter_mut().zip(&other.words) {
            *mine |= theirs;
        }
        self.len = self.words.iter().map(|w| u64::from(w.count_ones())).sum();
    }

    /// The numbers in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64u64)
                .filter(move |bit| w & (1u64 << bit) != 0)
                .map(move |bit| i as u64 * 64 + bit)
        })
    }
}

/// Counts per HTTP status code, with connection and protocol errors under code 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts(pub BTreeMap<u16, u64>);

impl StatusCounts {
    /// Counts one response (0 for an error without a response).
    pub fn add(&mut self, code: u16) {
        *self.0.entry(code).or_default() += 1;
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &StatusCounts) {
        for (code, n) in &other.0 {
            *self.0.entry(*code).or_default() += n;
        }
    }

    /// `202×9,812 503×3 error×1`.
    pub fn line(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(code, n)| match code {
                0 => format!("error×{n}"),
                c => format!("{c}×{n}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The machine the figures come from, recorded with them.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs this process may use.
    pub cores: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu: String,
    /// Total memory, MiB.
    pub memory_mib: u64,
    /// The kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads the description from procfs; fields it cannot read stay empty or zero.
    pub fn describe() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let memory_kib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory_mib: memory_kib / 1024,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        }
    }

    /// `2 cores (AMD EPYC …), 23.5 GiB, Linux 6.18`.
    pub fn line(&self) -> String {
        format!(
            "{} cores ({}), {:.1} GiB memory, Linux {}",
            self.cores,
            if self.cpu.is_empty() {
                "unknown CPU"
            } else {
                &self.cpu
            },
            self.memory_mib as f64 / 1024.0,
            self.kernel
        )
    }
}

/// The 1-minute load average (`uptime`), or 0 where procfs is absent.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 10))
}

/// utime + stime from a `/proc/<pid>/stat` line, in clock ticks (USER_HZ, which is 100 on
/// every Linux architecture Weft targets).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may hold spaces; after it, state is the first
    // field and utime, stime the 12th and 13th (fields 14 and 15 of proc(5)).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Resident memory (VmRSS) of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(kib * 1024)
}

/// A line on stderr, once a second, saying how a run is going: rewritten in place on a
/// terminal, one line per second otherwise (logs). Stops when dropped.
pub struct Progress {
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
    terminal: bool,
}

impl Progress {
    /// Starts showing `status(elapsed)` every second, prefixed by `label`; `enabled: false`
    /// shows nothing.
    pub fn start(
        label: String,
        enabled: bool,
        status: impl Fn(Duration) -> String + Send + 'static,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        let task = enabled.then(|| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let start = Instant::now();
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let line = format!("[{label}] {}", status(start.elapsed()));
                    let mut err = std::io::stderr().lock();
                    // A progress line that cannot be written is not worth failing a run.
                    let _ = if terminal {
                        write!(err, "\r\x1b[2K{line}")
                    } else {
                        writeln!(err, "{line}")
                    };
                    let _ = err.flush();
                }
            })
        });
        Progress {
            stop,
            task,
            terminal,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
            if self.terminal {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
        }
    }
}

/// Formats a rate with thousands separators: `12,345`.
pub fn thousands(value: f64) -> String {
    let n = value.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// `a / b` as a percentage, or `None` when `b` is zero.
pub fn percent(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_come_from_the_histogram() {
        let mut h = histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 1000);
        assert!((l.p50_ms - 0.5).abs() < 0.001, "{l:?}");
        assert!((l.p90_ms - 0.9).abs() < 0.001, "{l:?}");
        assert!((l.p99_ms - 0.99).abs() < 0.001, "{l:?}");
        assert!((l.p999_ms - 0.999).abs() < 0.001, "{l:?}");
        assert!((l.max_ms - 1.0).abs() < 0.001, "{l:?}");
        assert!((l.mean_ms - 0.5005).abs() < 0.001, "{l:?}");
        assert_eq!(Latency::of(&histogram()), Latency::default());
    }

    #[test]
    fn a_seq_set_counts_each_number_once() {
        let mut s = SeqSet::new();
        assert!(s.insert(3));
        assert!(s.insert(200));
        assert!(!s.insert(3), "the second insert is a duplicate");
        assert_eq!(s.len(), 2);
        assert!(s.contains(200) && !s.contains(199) && !s.contains(100_000));
        let mut other = SeqSet::new();
        other.insert(3);
        other.insert(64);
        s.union(&other);
        assert_eq!(s.iter().collect::<Vec<_>>(), [3, 64, 200]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn status_counts_merge_and_print() {
        let mut a = StatusCounts::default();
        a.add(202);
        a.add(202);
        a.add(0);
        let mut b = StatusCounts::default();
        b.add(503);
        b.add(202);
        a.merge(&b);
        assert_eq!(a.line(), "error×1 202×3 503×1");
    }

    #[test]
    fn proc_files_parse() {
        let stat = "4242 (weft up (x)) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(175));
        let status = "Name:\tweft\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn numbers_print_for_people() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(percent(1.0, 4.0), Some(25.0));
        assert_eq!(percent(1.0, 0.0), None);
    }
}
