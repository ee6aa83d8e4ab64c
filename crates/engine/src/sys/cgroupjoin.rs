//! Joining the cgroups of a container's PID 1: the `cgroup.procs` files of its hierarchies are opened on the
//! host's side (before the mount and cgroup namespaces are left), and the entering process writes "0" to
//! each, which moves it there. It is then accounted and limited with the container, and sees `/` as its
//! cgroup inside, like the container's own processes.
//!
//! Reads /proc/PID/cgroup and /proc/self/mountinfo; writes cgroup.procs.

use std::fs;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The `cgroup.procs` files (host paths, opened before entering) of the cgroups the container's PID 1 is
/// in. Writing "0" to one moves the writer there ([`join_cgroups`]), so an entering process is accounted
/// and limited with the container and sees `/` as its cgroup inside. A hierarchy that cannot be found or
/// opened is skipped: the process then stays in wayback's own cgroup there.
pub fn cgroup_procs(pid: i32) -> Vec<fs::File> {
    let (Ok(cgroup), Ok(mounts)) = (
        fs::read_to_string(format!("/proc/{pid}/cgroup")),
        fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return Vec::new();
    };
    cgroup_files(&cgroup, &mounts)
        .into_iter()
        .filter_map(|p| {
            fs::File::options()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(&p)
                .ok()
        })
        .collect()
}

/// Move the calling process into each cgroup of [`cgroup_procs`] (best effort: see there).
pub fn join_cgroups(files: &[fs::File]) {
    for mut f in files {
        let _ = std::io::Write::write_all(&mut f, b"0");
    }
}

/// For each line `ID:CONTROLLERS:PATH` of a /proc/PID/cgroup text, the `cgroup.procs` under the host's
/// mount of that hierarchy (cgroup2 for ID 0, else the cgroup v1 mount whose options name the controllers).
fn cgroup_files(cgroup: &str, mountinfo: &str) -> Vec<std::path::PathBuf> {
    let mounts: Vec<(&str, &str, Vec<&str>)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            (pre.get(3) == Some(&"/")).then_some((
                *pre.get(4)?,
                *post.first()?,
                post.get(2)?.split(',').collect(),
            ))
        })
        .collect();
    cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (controllers, path) = (f.nth(1)?, f.next()?);
            if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
                return None;
            }
            let (point, _, _) = mounts.iter().find(|(_, fs, opts)| {
                if controllers.is_empty() {
                    *fs == "cgroup2"
                } else {
                    *fs == "cgroup" && controllers.split(',').all(|c| opts.contains(&c))
                }
            })?;
            Some(
                Path::new(point)
                    .join(path.trim_start_matches('/'))
                    .join("cgroup.procs"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup_files_of_each_hierarchy() {
        let mountinfo = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
            32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
            40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let cgroup = "9:name=systemd:/payload\n4:memory:/\n1:cpu,cpuacct:/a\n7:pids:/\n0::/payload\n3:blkio:/../x\n";
        let got: Vec<String> = cgroup_files(cgroup, mountinfo)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(
            got,
            [
                "/sys/fs/cgroup/systemd/payload/cgroup.procs",
                "/sys/fs/cgroup/memory/cgroup.procs",
                "/sys/fs/cgroup/cpu,cpuacct/a/cgroup.procs",
                "/sys/fs/cgroup/unified/payload/cgroup.procs",
            ]
        );
    }
}
