//! A filesystem's space and inode counts, as the path probe's `statfs(2)`
//! found them, and the figures `check_disk` (monitoring-plugins) derives
//! from them: used and available bytes, and the used and free percentages
//! computed from `used / (used + available)`, so that the blocks reserved
//! for root count neither as used nor as free.
//!
//! Every figure saturates: a filesystem that reports more free blocks than
//! blocks, or sizes beyond `u64`, gives clamped numbers, never a panic.

/// Space and inode counts of one filesystem (`struct statfs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// The unit of the block counts: `f_frsize`, or `f_bsize` where the
    /// fragment size is zero.
    pub block_size: u64,
    /// `f_bsize`, the unit node_exporter multiplies the block counts by
    /// (see the `node_*` methods). Equal to `block_size` on most local
    /// filesystems; it can differ on network ones.
    pub bsize: u64,
    /// Total data blocks (`f_blocks`), reserved ones included.
    pub blocks: u64,
    /// Free blocks (`f_bfree`), reserved ones included.
    pub bfree: u64,
    /// Free blocks available to unprivileged users (`f_bavail`).
    pub bavail: u64,
    /// Total inodes (`f_files`); 0 where the filesystem has no fixed count.
    pub files: u64,
    /// Free inodes (`f_ffree`).
    pub ffree: u64,
}

impl FsStats {
    /// The counts of a `struct statfs`.
    pub fn from_statfs(s: &libc::statfs) -> FsStats {
        let frsize = u64::try_from(s.f_frsize).unwrap_or(0);
        let bsize = u64::try_from(s.f_bsize).unwrap_or(0);
        // The casts widen (fsblkcnt_t and fsfilcnt_t are u64 on 64-bit
        // targets, u32 or u64 on 32-bit ones).
        #[allow(clippy::unnecessary_cast)]
        FsStats {
            block_size: if frsize > 0 { frsize } else { bsize },
            bsize,
            blocks: s.f_blocks as u64,
            bfree: s.f_bfree as u64,
            bavail: s.f_bavail as u64,
            files: s.f_files as u64,
            ffree: s.f_ffree as u64,
        }
    }

    /// `blocks * block_size`, saturating.
    fn bytes(&self, blocks: u64) -> u64 {
        blocks.saturating_mul(self.block_size)
    }

    /// Size of the filesystem in bytes, reserved blocks included
    /// (check_disk's total, and the perfdata maximum).
    pub fn total_bytes(&self) -> u64 {
        self.bytes(self.blocks)
    }

    /// Bytes in use: total minus free (reserved blocks are free).
    pub fn used_bytes(&self) -> u64 {
        self.bytes(self.blocks.saturating_sub(self.bfree))
    }

    /// Bytes available to unprivileged users (`df`'s "Avail",
    /// check_disk's free space).
    pub fn avail_bytes(&self) -> u64 {
        self.bytes(self.bavail)
    }

    /// check_disk's used percentage: `used / (used + available)`, rounded
    /// up to a whole percent (as `df` does); `None` when the filesystem
    /// has no blocks used or available (a pseudo filesystem).
    pub fn used_percent(&self) -> Option<u64> {
        let used = u128::from(self.blocks.saturating_sub(self.bfree));
        ceil_percent(used, used + u128::from(self.bavail))
    }

    /// check_disk's free percentage: 100 minus [`used_percent`](Self::used_percent).
    pub fn free_percent(&self) -> Option<u64> {
        self.used_percent().map(|u| 100 - u)
    }

    /// node_exporter's `size_bytes`: `f_blocks * f_bsize`, saturating.
    pub fn node_size_bytes(&self) -> u64 {
        self.blocks.saturating_mul(self.bsize)
    }

    /// node_exporter's `free_bytes`: `f_bfree * f_bsize`, saturating.
    pub fn node_free_bytes(&self) -> u64 {
        self.bfree.saturating_mul(self.bsize)
    }

    /// node_exporter's `avail_bytes`: `f_bavail * f_bsize`, saturating.
    pub fn node_avail_bytes(&self) -> u64 {
        self.bavail.saturating_mul(self.bsize)
    }

    /// Inodes in use (`files - ffree`, saturating).
    pub fn inodes_used(&self) -> u64 {
        self.files.saturating_sub(self.ffree)
    }

    /// check_disk's free inode percentage: 100 minus the used share
    /// rounded up; `None` when the filesystem reports no inode count.
    pub fn inodes_free_percent(&self) -> Option<u64> {
        ceil_percent(u128::from(self.inodes_used()), u128::from(self.files)).map(|u| 100 - u)
    }
}

/// `ceil(part * 100 / whole)`, at most 100; `None` when `whole` is 0.
fn ceil_percent(part: u128, whole: u128) -> Option<u64> {
    if whole == 0 {
        return None;
    }
    let pct = (part.min(whole) * 100).div_ceil(whole);
    // pct <= 100.
    Some(pct as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(blocks: u64, bfree: u64, bavail: u64) -> FsStats {
        FsStats {
            block_size: 4096,
            bsize: 4096,
            blocks,
            bfree,
            bavail,
            files: 1000,
            ffree: 901,
        }
    }

    #[test]
    fn percentages_exclude_the_reserved_blocks_and_round_up() {
        // 1000 blocks, 100 free of which 50 reserved: used 900, avail 50,
        // used share 900/950 = 94.7% -> 95% used, 5% free.
        let f = fs(1000, 100, 50);
        assert_eq!(f.used_percent(), Some(95));
        assert_eq!(f.free_percent(), Some(5));
        assert_eq!(f.used_bytes(), 900 * 4096);
        assert_eq!(f.avail_bytes(), 50 * 4096);
        assert_eq!(f.total_bytes(), 1000 * 4096);
        // Inodes: 99 used of 1000 -> 9.9% -> 10% used, 90% free.
        assert_eq!(f.inodes_free_percent(), Some(90));
        assert_eq!(fs(10, 10, 10).free_percent(), Some(100));
        assert_eq!(fs(10, 0, 0).free_percent(), Some(0));
    }

    #[test]
    fn empty_and_inconsistent_counts_saturate() {
        assert_eq!(fs(0, 0, 0).used_percent(), None);
        let f = FsStats {
            files: 0,
            ..fs(0, 0, 0)
        };
        assert_eq!(f.inodes_free_percent(), None);
        // More free than total, more available than free.
        let f = fs(10, 20, 30);
        assert_eq!(f.used_bytes(), 0);
        assert_eq!(f.free_percent(), Some(100));
        let huge = FsStats {
            block_size: u64::MAX,
            bsize: u64::MAX,
            blocks: u64::MAX,
            bfree: 0,
            bavail: u64::MAX,
            files: u64::MAX,
            ffree: u64::MAX,
        };
        assert_eq!(huge.total_bytes(), u64::MAX);
        assert_eq!(huge.node_size_bytes(), u64::MAX);
        assert_eq!(huge.node_avail_bytes(), u64::MAX);
        assert_eq!(huge.used_percent(), Some(50));
        assert_eq!(huge.inodes_free_percent(), Some(100));
    }
}
