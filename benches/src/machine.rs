//! CPU time of processes and the load of the machine during a run, from
//! Linux's `/proc` (elsewhere every figure is `None`).
//!
//! - A process's CPU time is user + system time of all its threads
//!   (`/proc/PID/stat`, clock ticks, usually 10 ms). The benchmarks run the
//!   server as a child process, so each party's CPU time comes from the OS
//!   on its own.
//! - The machine's load over a run ([`Mark`] → [`MachineLoad`]): the load
//!   average at both ends (`/proc/loadavg`) and the CPU time all processes
//!   used (`/proc/stat`) minus what this process and its waited-for children
//!   (the server processes) used, as cores on average. When other processes
//!   used more than [`BUSY_CORES`], or the hypervisor withheld that much
//!   (steal), the run is flagged `busy` and a warning is printed: times
//!   measured then are inflated.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Other processes' average CPU use (cores) above which a run is flagged busy.
pub const BUSY_CORES: f64 = 0.1;

/// User and system CPU seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// User-mode seconds.
    pub user: f64,
    /// Kernel-mode seconds.
    pub system: f64,
}

impl Cpu {
    /// User + system.
    pub fn total(self) -> f64 {
        self.user + self.system
    }

    /// The time used since `earlier` (a reading of the same process).
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: (self.user - earlier.user).max(0.0),
            system: (self.system - earlier.system).max(0.0),
        }
    }

    /// Both readings' difference, if both were taken.
    pub fn between(earlier: Option<Cpu>, later: Option<Cpu>) -> Option<Cpu> {
        Some(later?.since(earlier?))
    }
}

impl std::ops::Add for Cpu {
    type Output = Cpu;
    fn add(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user + o.user,
            system: self.system + o.system,
        }
    }
}

fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// utime, stime, cutime, cstime (clock ticks) from the text of `/proc/PID/stat`.
fn parse_pid_stat(text: &str) -> Option<[u64; 4]> {
    // The command name (field 2) is in parentheses and may hold anything.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14.
    let field =
        |i: usize| -> Option<u64> { Some(f.get(i - 3)?.parse::<i64>().ok()?.max(0) as u64) };
    Some([field(14)?, field(15)?, field(16)?, field(17)?])
}

fn read_pid_stat(pid: &str) -> Option<[u64; 4]> {
    parse_pid_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn cpu_of_ticks(user: u64, system: u64) -> Cpu {
    let hz = ticks_per_second();
    Cpu {
        user: user as f64 / hz,
        system: system as f64 / hz,
    }
}

/// CPU time of process `pid` so far (all its threads, not its children).
pub fn process_cpu(pid: u32) -> Option<Cpu> {
    let [u, s, _, _] = read_pid_stat(&pid.to_string())?;
    Some(cpu_of_ticks(u, s))
}

/// Peak resident memory of process `pid` in bytes (`VmHWM` of
/// `/proc/PID/status`): since it started, or since [`reset_peak_rss`].
pub fn peak_rss_bytes(pid: u32) -> Option<u64> {
    parse_vm_hwm(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// Resets the peak resident memory of process `pid` to its current
/// resident memory (writes `5` to `/proc/PID/clear_refs`, Linux 4.0 and
/// later; needs the right to write there, as for one's own children).
/// Returns whether it worked.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok()
}

/// `VmHWM` in bytes from the text of `/proc/PID/status`.
fn parse_vm_hwm(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut it = line["VmHWM:".len()..].split_whitespace();
    let kib: u64 = it.next()?.parse().ok()?;
    (it.next()? == "kB").then_some(kib * 1024)
}

/// CPU time of this process so far (all its threads).
pub fn self_cpu() -> Option<Cpu> {
    let [u, s, _, _] = read_pid_stat("self")?;
    Some(cpu_of_ticks(u, s))
}

/// CPU time of this process and of its children that have been waited for.
fn own_tree_cpu() -> Option<Cpu> {
    let [u, s, cu, cs] = read_pid_stat("self")?;
    Some(cpu_of_ticks(u + cu, s + cs))
}

/// Ticks of the whole machine (all CPUs) from the text of `/proc/stat`:
/// (busy, steal). Busy is user + nice + system + irq + softirq (guest time
/// is already part of user).
fn parse_proc_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    if v.len() < 4 {
        return None;
    }
    Some((at(0) + at(1) + at(2) + at(5) + at(6), at(7)))
}

/// The three load averages from the text of `/proc/loadavg`.
fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The 1, 5 and 15 minute load averages now.
pub fn load_average() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// A point in time to measure the machine's load from ([`Mark::until_now`]).
#[derive(Clone, Debug)]
pub struct Mark {
    at: Instant,
    machine: Option<(u64, u64)>,
    own: Option<Cpu>,
    load: Option<[f64; 3]>,
}

impl Default for Mark {
    fn default() -> Self {
        Self::now()
    }
}

impl Mark {
    /// Now.
    pub fn now() -> Self {
        Self {
            at: Instant::now(),
            machine: std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|t| parse_proc_stat(&t)),
            own: own_tree_cpu(),
            load: load_average(),
        }
    }

    /// The machine's load from this mark until now. Call it after the
    /// server processes of the run have been waited for, so that their CPU
    /// time counts as this run's own.
    pub fn until_now(&self) -> MachineLoad {
        let end = Self::now();
        let seconds = end.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let hz = ticks_per_second();
        let cores = |ticks: u64| ticks as f64 / hz / seconds;
        let (busy, steal) = match (self.machine, end.machine) {
            (Some(a), Some(b)) => (
                Some(cores(b.0.saturating_sub(a.0))),
                Some(cores(b.1.saturating_sub(a.1))),
            ),
            _ => (None, None),
        };
        let own = Cpu::between(self.own, end.own).map(|c| c.total() / seconds);
        let others = match (busy, own) {
            (Some(b), Some(o)) => Some((b - o).max(0.0)),
            _ => None,
        };
        MachineLoad::new(seconds, self.load, end.load, busy, own, others, steal)
    }
}

/// The machine's load over a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineLoad {
    /// Wall seconds of the run.
    pub seconds: f64,
    /// Logical CPUs.
    pub cpus: usize,
    /// 1, 5 and 15 minute load averages when the run started.
    pub load_average_start: Option<[f64; 3]>,
    /// ... and when it ended.
    pub load_average_end: Option<[f64; 3]>,
    /// CPU use of all processes, cores on average.
    pub busy_cores: Option<f64>,
    /// Of which this process and its server processes.
    pub own_cores: Option<f64>,
    /// Of which other processes.
    pub others_cores: Option<f64>,
    /// CPU time the hypervisor gave to others (steal), cores on average.
    pub steal_cores: Option<f64>,
    /// Other processes or steal above [`BUSY_CORES`].
    pub busy: bool,
    /// What to make of it, if busy.
    pub warning: Option<String>,
}

impl MachineLoad {
    fn new(
        seconds: f64,
        start: Option<[f64; 3]>,
        end: Option<[f64; 3]>,
        busy: Option<f64>,
        own: Option<f64>,
        others: Option<f64>,
        steal: Option<f64>,
    ) -> Self {
        let mut m = Self {
            seconds,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_average_start: start,
            load_average_end: end,
            busy_cores: busy,
            own_cores: own,
            others_cores: others,
            steal_cores: steal,
            busy: false,
            warning: None,
        };
        m.judge();
        m
    }

    /// Sets `busy` and `warning` from the figures.
    fn judge(&mut self) {
        let mut why = Vec::new();
        if let Some(o) = self.others_cores.filter(|&o| o > BUSY_CORES) {
            why.push(format!("other processes used {o:.2} cores on average"));
        }
        if let Some(s) = self.steal_cores.filter(|&s| s > BUSY_CORES) {
            why.push(format!("the hypervisor withheld {s:.2} cores (steal)"));
        }
        self.busy = !why.is_empty();
        self.warning = self.busy.then(|| {
            format!(
                "WARNING: the machine was busy: {} during this {:.0} s run (of {} CPUs; threshold {BUSY_CORES} cores); times are inflated, re-measure on an idle machine",
                why.join(" and "),
                self.seconds,
                self.cpus
            )
        });
    }

    /// One line: load averages and CPU use during the run.
    pub fn describe(&self) -> String {
        let la = |l: Option<[f64; 3]>| l.map_or("?".into(), |l| format!("{:.2}", l[0]));
        let c = |x: Option<f64>| x.map_or("?".into(), |x| format!("{x:.2}"));
        format!(
            "load average {} -> {} (1 min); CPU use {} cores: this run {}, other processes {}, steal {} ({} CPUs, {:.0} s)",
            la(self.load_average_start),
            la(self.load_average_end),
            c(self.busy_cores),
            c(self.own_cores),
            c(self.others_cores),
            c(self.steal_cores),
            self.cpus,
            self.seconds
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        // A command name with spaces and parentheses, then fields 3.. of proc(5).
        let stat = "1234 (pi (bench) x) S 1 2 3 4 5 6 7 8 9 10 250 40 7 3 20 0 9 0";
        assert_eq!(parse_pid_stat(stat), Some([250, 40, 7, 3]));
        assert_eq!(parse_pid_stat("1 (x) S 1 2"), None);
        let machine = "cpu  100 5 30 1000 20 2 3 7 0 0\ncpu0 50 2 15 500 10 1 1 3 0 0\nintr 1";
        assert_eq!(parse_proc_stat(machine), Some((140, 7)));
        assert_eq!(parse_proc_stat("cpu0 1 2 3 4"), None);
        assert_eq!(
            parse_loadavg("1.29 2.75 2.82 3/456 12345\n"),
            Some([1.29, 2.75, 2.82])
        );
        assert_eq!(parse_loadavg("1.0 x"), None);
        let status = "Name:\tpi-bench\nVmPeak:\t  900 kB\nVmHWM:\t    1796 kB\nVmRSS:\t 1500 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(1796 * 1024));
        assert_eq!(parse_vm_hwm("VmHWM:\t12 MB\n"), None);
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
    }

    #[test]
    fn a_child_process_peak_memory_is_read_and_reset() {
        let Ok(mut child) = std::process::Command::new("sleep").arg("30").spawn() else {
            return; // no `sleep` here
        };
        let pid = child.id();
        if std::fs::metadata(format!("/proc/{pid}/status")).is_ok() {
            assert!(peak_rss_bytes(pid).unwrap() > 0);
            assert!(reset_peak_rss(pid));
            assert!(peak_rss_bytes(pid).unwrap() > 0);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(peak_rss_bytes(u32::MAX).is_none() && !reset_peak_rss(u32::MAX));
    }

    #[test]
    fn a_busy_machine_is_flagged() {
        let quiet = MachineLoad::new(
            10.0,
            None,
            None,
            Some(1.0),
            Some(0.95),
            Some(0.05),
            Some(0.0),
        );
        assert!(!quiet.busy && quiet.warning.is_none());
        let busy = MachineLoad::new(10.0, None, None, Some(1.9), Some(1.0), Some(0.9), Some(0.0));
        assert!(busy.busy);
        let w = busy.warning.unwrap();
        assert!(w.contains("WARNING") && w.contains("0.90 cores"), "{w}");
        let stolen = MachineLoad::new(10.0, None, None, Some(1.0), Some(1.0), Some(0.0), Some(0.5));
        assert!(stolen.busy && stolen.warning.unwrap().contains("steal"));
    }

    #[test]
    fn this_process_is_seen_working() {
        let (Some(c0), m) = (self_cpu(), Mark::now()) else {
            return; // not Linux
        };
        // Spin until the OS has counted 50 ms of CPU time (no wall-clock
        // threshold: on a busy machine this just takes longer).
        let t = Instant::now();
        let mut x = 0u64;
        let mut used = 0.0;
        while used < 0.05 && t.elapsed().as_secs() < 60 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            used = self_cpu().unwrap().since(c0).total();
        }
        assert!(used >= 0.05, "CPU time did not advance: {used}");
        let load = m.until_now();
        assert!(load.own_cores.unwrap() > 0.0, "{load:?}");
        assert!(load.busy_cores.unwrap() > 0.0, "{load:?}");
        assert!(load.load_average_end.is_some());
    }
}
