//! `region_reader`: whatever a file under `/dev/shm` holds, and whatever
//! another process does to it meanwhile, reading it as a region and as the
//! published table (`hangsafe status`'s code path) returns a value or an
//! error: no panic, no crash, no `SIGBUS`.
//!
//! The first input byte picks a mode:
//!
//! * 0: the rest of the input is the whole table file;
//! * 1: a real table (made once by a real publisher) patched by the
//!   operations the rest of the input encodes, liveness record included;
//! * 4: as 1, with the copies' checksums recomputed after patching, so
//!   that mutated rows reach the row decoder;
//! * 2: the same, with the operations applied by another thread *while*
//!   `status` reads (concurrent writes and truncations). Truncations keep
//!   at least one byte: emptying the file while the lock word is in use
//!   is the window `docs/races.md` (H24) documents;
//! * 3: the rest of the input is a file opened with
//!   `SharedRegion::open_from_fd`, then locked and read.
//!
//! Operations: a kind byte (even: write, odd: truncate), a 4-byte
//! little-endian offset, a length byte, then that many data bytes (write).

#![no_main]

use hangsafe_core::robust::{LockError, RegionOptions};
use hangsafe_cli::publish::{self, Publisher};
use hangsafe_cli::report::{Report, State};
use libfuzzer_sys::fuzz_target;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::OnceLock;
use std::time::Duration;

/// A real table region and liveness record, as a publisher leaves them.
struct Template {
    table: Vec<u8>,
    alive: Vec<u8>,
}

fn template() -> &'static Template {
    static T: OnceLock<Template> = OnceLock::new();
    T.get_or_init(|| {
        // Warm up what std allocates lazily, once per process, the first
        // time a thread is spawned or named (the main thread's handle, the
        // TLS destructor list): otherwise the leak check of the first input
        // that spawns a thread would report it.
        let _ = std::thread::current();
        std::thread::scope(|s| {
            let _ = s.spawn(|| {}).join();
        });
        let name = format!("fuzz-template-{}", std::process::id());
        let rows = [
            report("/mnt/a", State::Up, ""),
            report("tcp://db:5432", State::Down, "connection refused"),
            report("/srv/é", State::Timeout, "no answer"),
        ];
        let mut p = Publisher::open(&name, Duration::from_secs(1), Duration::from_secs(1))
            .expect("publish a template table");
        p.update(&rows, 7).expect("update the template table");
        drop(p);
        let read = |suffix: &str| {
            let path = format!("/dev/shm/{}{suffix}", publish::table_name(&name));
            let bytes = std::fs::read(&path).expect("read the template");
            std::fs::remove_file(&path).expect("remove the template");
            bytes
        };
        Template {
            table: read(""),
            alive: read(".alive"),
        }
    })
}

fn report(target: &str, state: State, detail: &str) -> Report {
    Report {
        target: target.to_owned(),
        kind: "path",
        state,
        latency: Some(Duration::from_micros(1500)),
        detail: detail.to_owned(),
    }
}

/// One decoded operation on a file.
enum Op<'a> {
    Write(u64, &'a [u8]),
    Truncate(u64),
}

fn ops(mut data: &[u8], file_len: u64) -> Vec<Op<'_>> {
    let mut out = Vec::new();
    while data.len() >= 6 {
        let kind = data[0];
        let raw = u64::from(u32::from_le_bytes([data[1], data[2], data[3], data[4]]));
        let n = usize::from(data[5]).min(data.len() - 6);
        // Offsets mostly within the file (where the structure is), some a
        // little beyond it.
        let off = raw % (file_len + 256);
        if kind % 2 == 0 {
            out.push(Op::Write(off, &data[6..6 + n]));
            data = &data[6 + n..];
        } else {
            out.push(Op::Truncate(off));
            data = &data[6..];
        }
    }
    out
}

fn apply(f: &std::fs::File, op: &Op<'_>, keep_one_byte: bool) {
    match *op {
        Op::Write(off, bytes) => {
            let _ = f.write_all_at(bytes, off);
        }
        Op::Truncate(len) => {
            let _ = f.set_len(if keep_one_byte { len.max(1) } else { len });
        }
    }
}

fn create(path: &str, bytes: &[u8]) -> std::fs::File {
    let _ = std::fs::remove_file(path);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create the fuzzed file");
    f.write_all_at(bytes, 0).expect("write the fuzzed file");
    f
}

/// Mode 3: the bytes as a region of 16 `u64`s given by descriptor.
fn open_from_fd(bytes: &[u8]) {
    // SAFETY: memfd_create with a valid NUL-terminated name; the result is
    // checked.
    let fd = unsafe { libc::memfd_create(c"hangsafe-fuzz".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let file = std::fs::File::from(fd);
    file.write_all_at(bytes, 0).expect("write the memfd");
    let opts = RegionOptions::new()
        .tag(0x6675_7a7a)
        .ready_timeout(Duration::ZERO);
    let Ok(region) = opts.open_from_fd::<[u64; 16]>(file) else {
        return;
    };
    if region.check_len().is_err() {
        return;
    }
    let guard = match region.lock_timeout(Duration::from_millis(20)) {
        Ok(g) => g,
        Err(LockError::OwnerDead(dead)) => {
            let mut g = dead.into_guard();
            let _ = g.make_consistent();
            g
        }
        Err(_) => return,
    };
    let _ = region.read(&guard);
    let _ = region.unlock(guard);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let _ = template();
    let name = format!("fuzz-{}", std::process::id());
    let table_path = format!("/dev/shm/{}", publish::table_name(&name));
    let alive_path = format!("/dev/shm/{}", publish::alive_name(&name));
    match mode % 5 {
        0 => {
            drop(create(&table_path, rest));
            let _ = publish::read_for_fuzz(&name);
        }
        1 => {
            let t = template();
            let f = create(&table_path, &t.table);
            let a = create(&alive_path, &t.alive);
            let len = t.table.len() as u64;
            for (i, op) in ops(rest, len).iter().enumerate() {
                apply(if i % 5 == 4 { &a } else { &f }, op, false);
            }
            let _ = publish::read_for_fuzz(&name);
        }
        2 => {
            let t = template();
            let f = create(&table_path, &t.table);
            let len = t.table.len() as u64;
            let ops = ops(rest, len);
            std::thread::scope(|s| {
                let writer = s.spawn(|| {
                    for op in &ops {
                        apply(&f, op, true);
                        std::thread::yield_now();
                    }
                });
                let _ = publish::read_for_fuzz(&name);
                // An explicit join waits for the thread's exit (its TLS
                // destructors included), which the scope's end does not.
                let _ = writer.join();
            });
        }
        3 => open_from_fd(rest),
        _ => {
            let t = template();
            let mut table = t.table.clone();
            let len = table.len() as u64;
            for op in ops(rest, len) {
                // Patches only (a truncation here is mode 1's business).
                if let Op::Write(off, bytes) = op {
                    let off = off.min(len) as usize;
                    let end = (off + bytes.len()).min(table.len());
                    table[off..end].copy_from_slice(&bytes[..end - off]);
                }
            }
            publish::reseal_for_fuzz(&mut table);
            drop(create(&table_path, &table));
            drop(create(&alive_path, &t.alive));
            let _ = publish::read_for_fuzz(&name);
        }
    }
    let _ = std::fs::remove_file(&table_path);
    let _ = std::fs::remove_file(&alive_path);
});
