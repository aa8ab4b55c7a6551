//! A user of hangsafe with loom tests of its own: built with
//! `RUSTFLAGS="--cfg loom"`, which must leave hangsafe's public API whole
//! (hangsafe models itself under its own `hangsafe_loom` cfg).

use hangsafe::nexus::RunnerSet;
use hangsafe::robust::{RegionOptions, SharedRegion};
use hangsafe::runner::Builder;
use std::time::Duration;

/// Probes `/` on a runner with a deadline, through a runner set, and
/// counts the probe in an anonymous shared region.
pub fn probe_root() -> bool {
    let set: RunnerSet<bool> = match RunnerSet::new() {
        Ok(set) => set,
        Err(_) => return false,
    };
    let builder = Builder::new().timeout(Duration::from_secs(2));
    let spawned = set.spawn(builder, |_ctx| std::path::Path::new("/").is_dir());
    let region: Option<SharedRegion<u64>> = RegionOptions::new().anonymous(0u64).ok();
    spawned.is_ok() && region.is_some()
}

/// This crate's own loom model, next to hangsafe's types.
#[cfg(loom)]
pub fn model() {
    loom::model(|| {
        let hits = loom::sync::Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let other = hits.clone();
        let t = loom::thread::spawn(move || {
            other.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
        });
        hits.fetch_add(1, loom::sync::atomic::Ordering::SeqCst);
        t.join().unwrap();
        let _builder = Builder::new();
        assert_eq!(hits.load(loom::sync::atomic::Ordering::SeqCst), 2);
    });
}
