//! Where environments that use up their CPU quota run: *pin the busy, float the rest*.
//!
//! The problem (BENCHMARKS.md, "A neighbour that is not throttled"): a group with one
//! vCPU of quota may run on every core at once until the quota of its period is
//! spent. A neighbour woken meanwhile waits behind it, and the scheduler only
//! switches at the end of a slice or at the tick (4 ms at `HZ=250`). Pinning every
//! environment by its entitlement was measured and was worse: a neighbour that shares
//! a CPU with an attacker can no longer move away. So only environments that are
//! actually busy are pinned:
//!
//! - A thread samples `cpu.stat` of every group with a CPU quota every
//!   [`SAMPLE`]. A group that the quota throttled in at least half of the periods it
//!   ran in (and in at least two) is *busy*.
//! - A busy group is pinned with `sched_setaffinity` on every task of the group to
//!   `ceil(vCPU)` CPUs, those with the least pinned load (see [`choose`]). Its
//!   children inherit the mask; tasks forked while it was applied are caught by the
//!   next pass ([`REFRESH_EVERY`]).
//! - After a hold ([`HOLD_MIN`]), the first time it runs, it floats again (an idle
//!   group stays pinned: its mask costs nothing then, and an attacker invoked again
//!   after a pause starts out pinned). Pinned again soon after
//!   ([`RELAPSE`]), the next hold doubles, up to [`HOLD_MAX`]; a function that keeps
//!   spinning spends almost all of its time pinned.
//! - A group that needs every CPU is never pinned, and nothing is pinned on a
//!   machine with one CPU.
//!
//! Function code cannot widen its own mask: seccomp denies `sched_setaffinity`.
//!
//! The decisions ([`Tracker`], [`choose`]) are pure and unit-tested; the pinning
//! itself is tested for real in `tests/linux.rs`.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::cgroup::{keyed_value, CpuLimit};

/// How often groups are sampled.
pub(crate) const SAMPLE: Duration = Duration::from_millis(25);
/// The first hold of a pin.
pub(crate) const HOLD_MIN: Duration = Duration::from_secs(1);
/// The longest hold.
pub(crate) const HOLD_MAX: Duration = Duration::from_secs(16);
/// Pinned again within this long of a release: the hold doubles.
pub(crate) const RELAPSE: Duration = Duration::from_secs(2);
/// A pinned group's mask is applied again every this many samples.
pub(crate) const REFRESH_EVERY: u32 = 20;

/// The CFS counters of a group's `cpu.stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Periods in which the group ran.
    pub(crate) periods: u64,
    /// Periods in which the quota ran out.
    pub(crate) throttled: u64,
}

impl Sample {
    /// From `cpu.stat` text (the same keys on cgroup v1 and v2).
    pub(crate) fn parse(text: &str) -> Option<Self> {
        Some(Self {
            periods: keyed_value(text, "nr_periods")?,
            throttled: keyed_value(text, "nr_throttled")?,
        })
    }
}

/// What to do with a group after a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing.
    Stay,
    /// Pin it.
    Pin,
    /// It stays pinned: apply the mask again (tasks forked meanwhile).
    Refresh,
    /// Let it float.
    Release,
}

/// One group's state: its last sample and whether and since when it is pinned.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    last: Option<Sample>,
    pinned_at: Option<Instant>,
    hold: Duration,
    released_at: Option<Instant>,
    samples: u32,
}

impl Tracker {
    /// Takes a new sample and says what to do.
    pub(crate) fn step(&mut self, s: Sample, now: Instant) -> Action {
        let (ran, throttled) = self.last.replace(s).map_or((0, 0), |p| {
            (
                s.periods.saturating_sub(p.periods),
                s.throttled.saturating_sub(p.throttled),
            )
        });
        let busy = throttled >= 2 && throttled * 2 >= ran;
        if let Some(at) = self.pinned_at {
            // Released only once it runs again: an idle group's mask costs nothing,
            // and an attacker invoked again after a pause starts out pinned.
            if ran > 0 && now.saturating_duration_since(at) >= self.hold {
                self.pinned_at = None;
                self.released_at = Some(now);
                return Action::Release;
            }
            self.samples += 1;
            return if self.samples.is_multiple_of(REFRESH_EVERY) {
                Action::Refresh
            } else {
                Action::Stay
            };
        }
        if !busy {
            return Action::Stay;
        }
        let relapse = self
            .released_at
            .is_some_and(|r| now.saturating_duration_since(r) <= RELAPSE);
        self.hold = if relapse {
            (self.hold * 2).clamp(HOLD_MIN, HOLD_MAX)
        } else {
            HOLD_MIN
        };
        self.pinned_at = Some(now);
        self.samples = 0;
        Action::Pin
    }

    /// Whether the group is pinned.
    pub(crate) fn pinned(&self) -> bool {
        self.pinned_at.is_some()
    }
}

/// The `k` positions of `load` (pinned load per CPU) with the least load, lowest
/// position first among equals, in ascending order.
pub(crate) fn choose(load: &[u64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..load.len()).collect();
    order.sort_by_key(|&i| (load[i], i));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// CPUs a group of `cpu` needs: its quota per period, rounded up.
pub(crate) fn cpus_needed(cpu: CpuLimit) -> usize {
    usize::try_from(cpu.quota_us.div_ceil(cpu.period_us.max(1)))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Pins busy groups (see the module documentation). One per driver, with its thread.
#[derive(Debug)]
pub(crate) struct Placer {
    /// The CPUs the server may use.
    cpus: Vec<usize>,
    state: Mutex<State>,
}

/// One group's system calls after a tick, made once the lock is let go.
#[derive(Debug)]
struct Work {
    /// The group's task list.
    tasks: PathBuf,
    /// The new mask of its tasks.
    mask: Vec<usize>,
    /// The CPUs it runs on now: the calls are made from there.
    from: Vec<usize>,
    /// A first pin (applied twice).
    first: bool,
    /// `cpu.idle` and the value to write.
    idle: Option<(PathBuf, &'static str)>,
}

#[derive(Debug, Default)]
struct State {
    groups: HashMap<u64, Group>,
    /// Pinned load per CPU (positions in `cpus`), in thousandths of a vCPU.
    load: Vec<u64>,
}

#[derive(Debug)]
struct Group {
    stat: File,
    tasks: PathBuf,
    /// `cpu.idle`: 1 while pinned.
    idle: PathBuf,
    /// Load it adds to each CPU it is pinned to, in thousandths of a vCPU.
    share: u64,
    need: usize,
    tracker: Tracker,
    /// Positions in `cpus` while pinned.
    on: Vec<usize>,
}

impl Placer {
    /// A placer and its sampling thread, or `None` where there is nothing to choose
    /// (one CPU).
    pub(crate) fn start() -> Option<Arc<Self>> {
        let cpus = sys::allowed_cpus().ok()?;
        if cpus.len() < 2 {
            return None;
        }
        let me = Arc::new(Self {
            state: Mutex::new(State {
                groups: HashMap::new(),
                load: vec![0; cpus.len()],
            }),
            cpus,
        });
        let weak: Weak<Self> = Arc::downgrade(&me);
        std::thread::Builder::new()
            .name("stratus-cpus".into())
            .spawn(move || loop {
                std::thread::sleep(SAMPLE);
                let Some(me) = weak.upgrade() else { return };
                me.tick(Instant::now());
            })
            .ok()?;
        Some(me)
    }

    /// Starts sampling group `id` (its `cpu.stat` and its task list) with quota
    /// `cpu`. A group that needs every CPU is not watched.
    pub(crate) fn watch(&self, id: u64, dir: &Path, tasks: PathBuf, cpu: CpuLimit) {
        let stat = dir.join("cpu.stat");
        let need = cpus_needed(cpu);
        if need >= self.cpus.len() {
            return;
        }
        let stat = match File::open(&stat) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("cannot watch {}: {e}", stat.display());
                return;
            }
        };
        let share = cpu.quota_us * 1000 / cpu.period_us.max(1) / need as u64;
        self.state.lock().groups.insert(
            id,
            Group {
                stat,
                tasks,
                idle: dir.join("cpu.idle"),
                share,
                need,
                tracker: Tracker::default(),
                on: Vec::new(),
            },
        );
    }

    /// Stops watching group `id` (its environment ended) and frees its CPUs.
    pub(crate) fn forget(&self, id: u64) {
        let mut state = self.state.lock();
        if let Some(g) = state.groups.remove(&id) {
            unload(&mut state.load, &g);
        }
    }

    /// Groups pinned now.
    pub(crate) fn pinned(&self) -> usize {
        self.state
            .lock()
            .groups
            .values()
            .filter(|g| g.tracker.pinned())
            .count()
    }

    /// Samples every group and pins or releases; the system calls run after the lock
    /// is let go.
    fn tick(&self, now: Instant) {
        let mut work: Vec<Work> = Vec::new();
        {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            let mut buf = [0u8; 512];
            for g in state.groups.values_mut() {
                let Ok(n) = g.stat.read_at(&mut buf, 0) else {
                    continue;
                };
                let Some(sample) = std::str::from_utf8(&buf[..n]).ok().and_then(Sample::parse)
                else {
                    continue;
                };
                let on = |g: &Group| g.on.iter().map(|&i| self.cpus[i]).collect::<Vec<_>>();
                match g.tracker.step(sample, now) {
                    Action::Stay => {}
                    Action::Pin => {
                        g.on = choose(&state.load, g.need);
                        for &i in &g.on {
                            state.load[i] += g.share;
                        }
                        work.push(Work {
                            tasks: g.tasks.clone(),
                            mask: on(g),
                            from: on(g),
                            first: true,
                            idle: Some((g.idle.clone(), "1")),
                        });
                    }
                    Action::Refresh => work.push(Work {
                        tasks: g.tasks.clone(),
                        mask: on(g),
                        from: on(g),
                        first: false,
                        idle: None,
                    }),
                    Action::Release => {
                        let from = on(g);
                        unload(&mut state.load, g);
                        g.on.clear();
                        work.push(Work {
                            tasks: g.tasks.clone(),
                            mask: self.cpus.clone(),
                            from,
                            first: false,
                            idle: Some((g.idle.clone(), "0")),
                        });
                    }
                }
            }
        }
        if work.is_empty() {
            return;
        }
        for w in work {
            if let Some((file, value)) = w.idle {
                // An idle group gives way at once to any other task woken on its
                // CPUs, instead of at the end of its slice or the next tick.
                let _ = std::fs::write(file, value);
            }
            if w.first {
                tracing::debug!(
                    "{} used up its CPU quota: pinned to CPUs {:?}",
                    w.tasks.display(),
                    w.mask
                );
            }
            // The system calls (one per task: a fork bomb has hundreds) run on the
            // group's own CPUs, not on those its neighbours are left.
            sys::set_own_affinity(&w.from);
            // A first pin runs twice: tasks forked while it ran get the mask too.
            for _ in 0..if w.first { 2 } else { 1 } {
                sys::set_affinity(&w.tasks, &w.mask);
            }
        }
        sys::set_own_affinity(&self.cpus);
    }
}

/// Takes the load of pinned group `g` off its CPUs.
fn unload(load: &mut [u64], g: &Group) {
    for &i in &g.on {
        load[i] = load[i].saturating_sub(g.share);
    }
}

#[allow(unsafe_code)]
mod sys {
    use std::io;
    use std::path::Path;

    /// The CPUs this process may run on.
    pub(super) fn allowed_cpus() -> io::Result<Vec<usize>> {
        // SAFETY: an all-zero cpu_set_t is a valid empty set; sched_getaffinity fills
        // the set we pass with its size; CPU_ISSET reads it within CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect())
        }
    }

    /// Moves the calling thread to `cpus`.
    pub(super) fn set_own_affinity(cpus: &[usize]) {
        // SAFETY: as in `set_affinity`; tid 0 is the calling thread.
        unsafe {
            let set = mask(cpus);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }

    /// A CPU set of `cpus` (those within CPU_SETSIZE).
    unsafe fn mask(cpus: &[usize]) -> libc::cpu_set_t {
        // SAFETY: an all-zero cpu_set_t is a valid empty set; CPU_SET writes within
        // CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
                libc::CPU_SET(c, &mut set);
            }
            set
        }
    }

    /// Sets the affinity of every task listed in `tasks` (a cgroup's `tasks` or
    /// `cgroup.threads`) to `cpus`. Tasks that exited meanwhile are skipped.
    pub(super) fn set_affinity(tasks: &Path, cpus: &[usize]) {
        let Ok(list) = std::fs::read_to_string(tasks) else {
            return;
        };
        // SAFETY: sched_setaffinity reads the set we pass with its size and only
        // changes the task's mask.
        unsafe {
            let set = mask(cpus);
            for tid in list
                .split_whitespace()
                .filter_map(|t| t.parse::<i32>().ok())
            {
                libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(periods: u64, throttled: u64) -> Sample {
        Sample { periods, throttled }
    }

    #[test]
    fn parses_v1_and_v2_cpu_stat() {
        let v1 = "nr_periods 151\nnr_throttled 150\nthrottled_time 1473761192\nnr_bursts 0\nburst_time 0\n";
        assert_eq!(Sample::parse(v1), Some(s(151, 150)));
        let v2 = "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 7\nnr_throttled 3\nthrottled_usec 9\n";
        assert_eq!(Sample::parse(v2), Some(s(7, 3)));
        assert_eq!(Sample::parse("usage_usec 10\n"), None);
        assert_eq!(Sample::parse(""), None);
    }

    #[test]
    fn a_group_under_its_quota_floats() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        assert_eq!(t.step(s(0, 0), t0), Action::Stay);
        // Ran in every period, throttled in one of five: not busy.
        assert_eq!(t.step(s(5, 1), t0 + SAMPLE), Action::Stay);
        // Throttled in two of five: not half.
        assert_eq!(t.step(s(10, 3), t0 + SAMPLE * 2), Action::Stay);
        // Counters that go backwards (a reused group) are no sign of anything.
        assert_eq!(t.step(s(0, 0), t0 + SAMPLE * 3), Action::Stay);
        assert!(!t.pinned());
    }

    #[test]
    fn a_throttled_group_is_pinned_then_released_with_a_growing_hold() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        // The first sample has nothing to compare with.
        assert_eq!(t.step(s(100, 100), t0), Action::Stay);
        let mut now = t0 + SAMPLE;
        let mut n = 100;
        assert_eq!(t.step(s(n + 5, n + 5), now), Action::Pin);
        assert!(t.pinned());
        // Held for HOLD_MIN, refreshed every REFRESH_EVERY samples meanwhile.
        let mut refreshes = 0;
        loop {
            now += SAMPLE;
            n += 5;
            match t.step(s(n, n), now) {
                Action::Refresh => refreshes += 1,
                Action::Stay => {}
                Action::Release => break,
                Action::Pin => panic!("pinned twice"),
            }
        }
        let held = now - (t0 + SAMPLE);
        assert!(held >= HOLD_MIN && held < HOLD_MIN + SAMPLE, "{held:?}");
        let samples = (HOLD_MIN.as_millis() / SAMPLE.as_millis()) as u32;
        assert_eq!(refreshes, (samples - 1) / REFRESH_EVERY);
        // Still spinning: pinned again at once, for twice as long.
        now += SAMPLE;
        n += 5;
        assert_eq!(t.step(s(n, n), now), Action::Pin);
        let pinned = now;
        while t.step(s(n, n), {
            now += SAMPLE;
            n += 5;
            now
        }) != Action::Release
        {}
        let held = now - pinned;
        assert!(
            held >= HOLD_MIN * 2 && held < HOLD_MIN * 2 + SAMPLE,
            "{held:?}"
        );
        // Doubling stops at HOLD_MAX.
        for _ in 0..10 {
            now += SAMPLE;
            n += 5;
            assert_eq!(t.step(s(n, n), now), Action::Pin);
            while t.step(s(n, n), {
                now += SAMPLE;
                n += 5;
                now
            }) != Action::Release
            {}
        }
        assert_eq!(t.hold, HOLD_MAX);
        // Idle after its hold: it stays pinned until it runs again, then floats.
        now += SAMPLE;
        n += 5;
        assert_eq!(t.step(s(n, n), now), Action::Pin);
        now += HOLD_MAX * 2;
        assert_ne!(t.step(s(n, n), now), Action::Release);
        assert!(t.pinned());
        now += SAMPLE;
        assert_eq!(t.step(s(n + 1, n), now), Action::Release);
        n += 1;
        // Busy again long after a release: back to the shortest hold.
        now += RELAPSE * 2;
        assert_eq!(t.step(s(n, n), now), Action::Stay);
        now += SAMPLE;
        n += 5;
        assert_eq!(t.step(s(n, n), now), Action::Pin);
        assert_eq!(t.hold, HOLD_MIN);
    }

    #[test]
    fn choose_takes_the_least_loaded_cpus() {
        assert_eq!(choose(&[0, 0], 1), vec![0]);
        assert_eq!(choose(&[1000, 0], 1), vec![1]);
        assert_eq!(choose(&[500, 0, 200, 0], 2), vec![1, 3]);
        assert_eq!(choose(&[500, 100, 200, 300], 3), vec![1, 2, 3]);
        assert_eq!(choose(&[0, 0], 5), vec![0, 1]);
    }

    #[test]
    fn cpus_needed_rounds_the_quota_up() {
        assert_eq!(cpus_needed(CpuLimit::for_memory(128)), 1);
        assert_eq!(cpus_needed(CpuLimit::for_memory(1769)), 1);
        assert_eq!(cpus_needed(CpuLimit::for_memory(1770)), 2);
        assert_eq!(cpus_needed(CpuLimit::for_memory(10240)), 6);
    }
}
