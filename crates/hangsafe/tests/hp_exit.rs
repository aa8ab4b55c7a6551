//! H14–H16: what process exit does to hangsafe's threads.
//!
//! This test has no libtest harness: it runs itself as the program under
//! test (`HP_EXIT_MODE` set), so the child has no threads but its own and
//! hangsafe's.
//!
//! * H14: a program that used the global pool (runners with and without
//!   deadlines) and returns from `main` is clean under valgrind's memcheck
//!   with `--leak-check=full --show-possibly-lost=yes
//!   --errors-for-leak-kinds=definite,possible` at the default
//!   `--num-callers`: the idle pool threads and the timer thread were
//!   stopped and joined at exit. Skipped when valgrind is absent, unless
//!   `CI` is set.
//! * H15: exit never waits for hung work: `main` returns while a runner's
//!   work sleeps for a minute, and the process ends at once.
//! * H16: `exit` called from inside work, or while another thread keeps
//!   spawning, ends the process without deadlock or crash.

use hangsafe::runner::{Builder, Pool, RunError};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const VALGRIND_FLAGS: &[&str] = &[
    "--leak-check=full",
    "--show-possibly-lost=yes",
    "--errors-for-leak-kinds=definite,possible",
    "--error-exitcode=1",
];

fn child(mode: &str) -> ExitCode {
    match mode {
        "clean" => {
            for i in 0..20u64 {
                let r = Builder::new()
                    .timeout(Duration::from_secs(30))
                    .spawn(move |_| i * 2)
                    .unwrap();
                assert_eq!(r.wait(), Ok(i * 2));
            }
            // Two threads at once, one of them cancelled.
            let a = hangsafe::runner::spawn(|ctx| {
                while !ctx.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
            .unwrap();
            let b = Builder::new()
                .timeout(Duration::from_millis(20))
                .spawn(|ctx| {
                    while !ctx.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
                .unwrap();
            assert_eq!(b.wait(), Err(RunError::TimedOut));
            a.cancel();
            assert_eq!(a.wait(), Err(RunError::Cancelled));
            // Wait until no work runs any more: every thread is idle.
            let end = Instant::now() + Duration::from_secs(60);
            while Pool::global().metrics().threads_running != 0 && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            ExitCode::SUCCESS
        }
        "hung" => {
            let r = hangsafe::runner::spawn(|_| std::thread::sleep(Duration::from_secs(60)));
            std::mem::forget(r);
            std::thread::sleep(Duration::from_millis(50));
            ExitCode::from(3)
        }
        "from_work" => {
            let r = Builder::new()
                .timeout(Duration::from_secs(30))
                .spawn(|_| std::process::exit(7))
                .unwrap();
            let _ = r.wait();
            std::thread::sleep(Duration::from_secs(30));
            ExitCode::from(1)
        }
        "spawn_race" => {
            std::thread::spawn(|| loop {
                if let Ok(r) = Builder::new()
                    .timeout(Duration::from_millis(1))
                    .spawn(|_| ())
                {
                    drop(r);
                }
            });
            std::thread::sleep(Duration::from_millis(100));
            ExitCode::from(4)
        }
        other => panic!("unknown mode {other}"),
    }
}

fn me(mode: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.env("HP_EXIT_MODE", mode);
    c
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Runs `cmd` and returns its exit code and how long it took.
fn timed(mut cmd: Command) -> (Option<i32>, Duration, String) {
    let start = Instant::now();
    let out = cmd.output().expect("cannot run the child");
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), start.elapsed(), text)
}

fn h14_rust_exit_is_valgrind_clean() {
    if !on_path("valgrind") {
        assert!(std::env::var_os("CI").is_none(), "CI must install valgrind");
        println!("h14: skipped, valgrind is not on PATH (set CI to make this an error)");
        return;
    }
    let mut cmd = Command::new("valgrind");
    cmd.args(VALGRIND_FLAGS)
        .arg(std::env::current_exe().unwrap())
        .env("HP_EXIT_MODE", "clean");
    let (code, took, err) = timed(cmd);
    assert_eq!(code, Some(0), "valgrind reported errors ({took:?}):\n{err}");
    println!("h14: clean under valgrind ({took:?})");
}

fn h15_exit_does_not_wait_for_hung_work() {
    let (code, took, err) = timed(me("hung"));
    assert_eq!(code, Some(3), "{err}");
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
    println!("h15: exited in {took:?} with hung work");
}

fn h16_exit_from_work_and_during_spawns() {
    let (code, took, err) = timed(me("from_work"));
    assert_eq!(code, Some(7), "{err}");
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
    for _ in 0..5 {
        let (code, took, err) = timed(me("spawn_race"));
        assert_eq!(code, Some(4), "{err}");
        assert!(took < Duration::from_secs(20), "exit took {took:?}");
    }
    println!("h16: exit from work and during spawns");
}

fn main() -> ExitCode {
    if let Ok(mode) = std::env::var("HP_EXIT_MODE") {
        return child(&mode);
    }
    if std::env::var_os("HANGSAFE_UNDER_EMULATION").is_some() {
        // Every check re-executes this binary, which the host cannot exec
        // under qemu-user; the exit hook's logic runs natively on x86_64.
        println!("hp_exit: skipped under emulation (cannot re-execute the test binary)");
        return ExitCode::SUCCESS;
    }
    h15_exit_does_not_wait_for_hung_work();
    h16_exit_from_work_and_during_spawns();
    h14_rust_exit_is_valgrind_clean();
    println!("hp_exit: all passed");
    ExitCode::SUCCESS
}
