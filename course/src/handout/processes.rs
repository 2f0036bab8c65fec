//! The grader's processes: a scratch folder per grading run, and test processes run in
//! process groups of their own, so that a timeout or Ctrl-C kills everything a test started.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use zero_to_r1::error::{Error, Result};

/// A folder of the grader's own, new for each grading run and removed with it: the logs and
/// outputs of the test runs go here, out of the student's folder.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    pub(super) fn new() -> Result<Scratch> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        for attempt in 0.. {
            let dir = base.join(format!(
                "z2r1-grade-{}-{nanos}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&dir) {
                Ok(()) => return Ok(Scratch(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        unreachable!("the loop above returns")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A command to run, with its stdout and stderr going to two files.
pub(super) struct Job {
    cmd: Command,
    pub(super) stdout: PathBuf,
    pub(super) stderr: PathBuf,
}

impl Job {
    pub(super) fn new(cmd: Command, scratch: &Path, name: &str) -> Job {
        Job {
            cmd,
            stdout: scratch.join(format!("{name}.out")),
            stderr: scratch.join(format!("{name}.err")),
        }
    }

    fn spawn(&mut self) -> Result<Child> {
        let program = PathBuf::from(self.cmd.get_program());
        let out = std::fs::File::create(&self.stdout).map_err(|e| Error::io(&self.stdout, e))?;
        let err = std::fs::File::create(&self.stderr).map_err(|e| Error::io(&self.stderr, e))?;
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        // Its own process group, so that everything it starts can be stopped with it.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut self.cmd, 0);
        self.cmd.spawn().map_err(|e| Error::io(program, e))
    }
}

/// Kills the process group that `child` leads: the child and whatever it started and left
/// in its group. A process that deliberately leaves the group (`setsid`) is out of reach.
fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        const SIGKILL: i32 = 9;
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: sends a signal to the group this grader created for the child; the
            // group id is the child's pid, which stays reserved while any process of the group
            // (or the child's unreaped exit) remains.
            unsafe {
                kill(-pid, SIGKILL);
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
}

/// Set by SIGINT or SIGTERM while jobs run: their process groups are not the terminal's, so
/// Ctrl-C reaches only the grader, which must stop them itself.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// While one is alive, SIGINT and SIGTERM set [`INTERRUPTED`] instead of ending the grader;
/// when the last one (of those alive in all threads) goes, the previous handlers come back.
struct InterruptGuard;

/// How many [`InterruptGuard`]s are alive, and the handlers they replaced.
#[cfg(unix)]
static HANDLERS: std::sync::Mutex<(usize, [(i32, usize); 2])> =
    std::sync::Mutex::new((0, [(2, 0), (15, 0)]));

#[cfg(unix)]
extern "C" {
    fn signal(signum: i32, handler: usize) -> usize;
}

#[cfg(unix)]
extern "C" fn on_interrupt(_: i32) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

impl InterruptGuard {
    fn install() -> InterruptGuard {
        #[cfg(unix)]
        {
            let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
            if handlers.0 == 0 {
                INTERRUPTED.store(false, std::sync::atomic::Ordering::SeqCst);
                let handler = on_interrupt as extern "C" fn(i32) as usize;
                for (signum, previous) in handlers.1.iter_mut() {
                    // SAFETY: the handler only stores to an atomic (async-signal-safe).
                    *previous = unsafe { signal(*signum, handler) };
                }
            }
            handlers.0 += 1;
        }
        InterruptGuard
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let mut handlers = HANDLERS.lock().unwrap_or_else(|e| e.into_inner());
            handlers.0 -= 1;
            if handlers.0 == 0 {
                for (signum, previous) in handlers.1 {
                    // SAFETY: puts back the handler that was there before the first guard.
                    unsafe {
                        signal(signum, previous);
                    }
                }
            }
        }
    }
}

/// Runs `jobs`, at most `parallel` at a time, each in a process group of its own. Whatever
/// is still running at `deadline` is killed with its whole group, and jobs not started by
/// then never start. A job that ends has whatever it left in its group killed as well.
/// Returns each job's exit status, `None` for those that ran out of time.
pub(super) fn run_jobs(
    jobs: &mut [Job],
    parallel: usize,
    deadline: Instant,
) -> Result<Vec<Option<ExitStatus>>> {
    let _guard = InterruptGuard::install();
    let mut status: Vec<Option<ExitStatus>> = vec![None; jobs.len()];
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut next = 0;
    let stop_all = |running: &mut Vec<(usize, Child)>| {
        for (_, child) in running.iter_mut() {
            kill_group(child);
            let _ = child.wait();
        }
        running.clear();
    };
    loop {
        if INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            stop_all(&mut running);
            return Err(Error::invalid(
                "grading",
                "interrupted; the tests that were running are stopped",
            ));
        }
        if Instant::now() >= deadline {
            stop_all(&mut running);
            return Ok(status);
        }
        while running.len() < parallel.max(1) && next < jobs.len() {
            match jobs[next].spawn() {
                Ok(child) => running.push((next, child)),
                Err(e) => {
                    stop_all(&mut running);
                    return Err(e);
                }
            }
            next += 1;
        }
        if running.is_empty() {
            return Ok(status);
        }
        let mut i = 0;
        while i < running.len() {
            let (job, child) = &mut running[i];
            match child.try_wait() {
                Ok(Some(s)) => {
                    status[*job] = Some(s);
                    // Whatever it started and left behind goes with it.
                    kill_group(child);
                    running.swap_remove(i);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    let program = PathBuf::from(jobs[*job].cmd.get_program());
                    stop_all(&mut running);
                    return Err(Error::io(program, e));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many grading tests run at once: `RUST_TEST_THREADS` if set, else one per core (the
/// same as libtest).
pub(super) fn parallel_tests() -> usize {
    std::env::var("RUST_TEST_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}
