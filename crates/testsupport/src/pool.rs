//! `BtrfsPool`: a loop-backed btrfs filesystem in a temp dir, removed with everything in it on drop.

#![allow(dead_code, unused_imports)]

use super::*;

/// A btrfs filesystem on a sparse loop file in a temp dir, mounted under that temp dir.
pub struct BtrfsPool {
    dir: TempDir,
    /// `wbt<pid>x<n>`: prefix of the image file name (and of the temp dir).
    pub id: String,
    pub image: PathBuf,
    pub loopdev: String,
    mount: PathBuf,
    mounted: bool,
    own: Mutex<Vec<String>>,
}

impl BtrfsPool {
    /// A 2 GiB (sparse) pool.
    pub fn new() -> BtrfsPool {
        BtrfsPool::with_size(2 << 30)
    }

    pub fn with_size(bytes: u64) -> BtrfsPool {
        let id = format!("wbt{}x{}", std::process::id(), next_counter());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir()
            .expect("tempdir for pool");
        // Services in the pool run as other users (postgres): they must be able to traverse down to it.
        chmod(dir.path(), 0o755);
        let image = dir.path().join(format!("{id}.img"));
        let f = fs::File::create(&image).expect("create image");
        f.set_len(bytes).expect("size image");
        drop(f);
        cmd_ok("mkfs.btrfs", &["-q", path_str(&image)]);
        let loopdev = cmd_ok("losetup", &["--find", "--show", path_str(&image)])
            .trim()
            .to_string();
        let mount = dir.path().join("mnt");
        let mut pool = BtrfsPool {
            dir,
            id,
            image,
            loopdev,
            mount,
            mounted: false,
            own: Mutex::new(Vec::new()),
        };
        mkdir_p(&pool.mount);
        cmd_ok("mount", &[&pool.loopdev, path_str(&pool.mount)]);
        pool.mounted = true;
        chmod(&pool.mount, 0o755);
        pool
    }

    /// The pool's mount point (top of the btrfs filesystem).
    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The temp dir holding image and mount point.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<mount>/<rel>`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mount.join(rel)
    }

    /// `btrfs subvolume create <mount>/<rel>` (parents created as plain directories).
    pub fn subvolume_create(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            mkdir_p(parent);
        }
        cmd_ok("btrfs", &["subvolume", "create", path_str(&p)]);
        self.own
            .lock()
            .unwrap()
            .push(rel.trim_matches('/').to_string());
        p
    }

    /// `btrfs subvolume snapshot -r <mount>/<src> <mount>/<dst>`.
    pub fn snapshot_ro(&self, src_rel: &str, dst_rel: &str) -> PathBuf {
        self.snapshot(src_rel, dst_rel, true)
    }

    /// A writable snapshot (`btrfs subvolume snapshot <src> <dst>`).
    pub fn snapshot_rw(&self, src_rel: &str, dst_rel: &str) -> PathBuf {
        self.snapshot(src_rel, dst_rel, false)
    }

    fn snapshot(&self, src_rel: &str, dst_rel: &str, readonly: bool) -> PathBuf {
        let src = self.path(src_rel);
        let dst = self.path(dst_rel);
        if let Some(parent) = dst.parent() {
            mkdir_p(parent);
        }
        let ro: &[&str] = if readonly { &["-r"] } else { &[] };
        let args: Vec<&str> = ["subvolume", "snapshot"]
            .iter()
            .copied()
            .chain(ro.iter().copied())
            .chain([path_str(&src), path_str(&dst)])
            .collect();
        cmd_ok("btrfs", &args);
        self.own
            .lock()
            .unwrap()
            .push(dst_rel.trim_matches('/').to_string());
        dst
    }

    /// Paths (relative to the top of the filesystem) of all subvolumes, from `btrfs subvolume list`.
    pub fn subvolumes(&self) -> Vec<String> {
        let out = cmd_ok("btrfs", &["subvolume", "list", path_str(&self.mount)]);
        out.lines()
            .filter_map(|l| l.split_once(" path ").map(|(_, p)| p.trim().to_string()))
            .collect()
    }

    /// Subvolumes this test made itself.
    pub fn own_subvolumes(&self) -> Vec<String> {
        self.own.lock().unwrap().clone()
    }

    /// Where wayback puts the clone of instance `name` with the default `clone_dir = ".wayback"`.
    pub fn clone_path(&self, name: &str) -> PathBuf {
        self.mount.join(".wayback").join(name)
    }
}

impl Default for BtrfsPool {
    fn default() -> Self {
        BtrfsPool::new()
    }
}

impl Drop for BtrfsPool {
    fn drop(&mut self) {
        if self.mounted && !cmd_quiet("umount", &[path_str(&self.mount)]) {
            eprintln!("cleanup: lazy unmount of {}", self.mount.display());
            cmd_quiet("umount", &["-l", path_str(&self.mount)]);
        }
        cmd_quiet("losetup", &["-d", &self.loopdev]);
        // Detaching is deferred while anything still holds the device (a short-lived mount namespace copy,
        // btrfs closing its devices): wait for it, briefly.
        let backing = Path::new("/sys/block")
            .join(self.loopdev.trim_start_matches("/dev/"))
            .join("loop/backing_file");
        let gone = wait_for(Duration::from_secs(10), || {
            let still = fs::read_to_string(&backing).is_ok_and(|b| b.contains(&self.id));
            (!still).then_some(())
        });
        if gone.is_none() {
            eprintln!(
                "cleanup: {} still attached to {} after 10 s",
                self.loopdev,
                self.image.display()
            );
        }
        // The TempDir removes the image and the mount point directory.
    }
}

/// Loop devices whose backing file name contains `needle` (from `losetup -a`).
pub fn loop_devices_with(needle: &str) -> Vec<String> {
    cmd_ok("losetup", &["-a"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// `btrfs property get -ts PATH ro` says `ro=true`.
pub fn is_readonly_subvolume(path: &Path) -> bool {
    let out = cmd("btrfs", &["property", "get", "-ts", path_str(path), "ro"]);
    out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ro=true"
}

/// Whether `path` is a btrfs subvolume (`btrfs subvolume show` succeeds).
pub fn is_subvolume(path: &Path) -> bool {
    cmd("btrfs", &["subvolume", "show", path_str(path)])
        .status
        .success()
}
