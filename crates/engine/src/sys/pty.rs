//! A pseudo-terminal inside a container for `wayback shell`, and the host terminal's side of it.
//!
//! The pty is made in the container's own devpts (opened after joining its mount namespace), so `tty`,
//! `sudo` and friends inside see a terminal of theirs. `/dev/pts/ptmx` is opened without following
//! symlinks and must be a character device; the peer is opened from the master (`TIOCGPTPEER`), never by a
//! path the container could have replaced. The host terminal is put in raw mode while the session runs
//! (restored on drop) and its window size follows to the pty.
//!
//! Syscalls: open, fstat, ioctl (TIOCSPTLCK, TIOCGPTPEER, TIOCGWINSZ, TIOCSWINSZ, TIOCSCTTY), tcgetattr,
//! tcsetattr, read, write.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};

use nix::sys::termios::{self, SetArg, Termios};

/// A pty pair in the current mount namespace's /dev/pts.
pub struct Pty {
    pub master: File,
    pub peer: OwnedFd,
}

impl Pty {
    pub fn open() -> io::Result<Pty> {
        let master = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open("/dev/pts/ptmx")?;
        if !master.metadata()?.file_type().is_char_device() {
            return Err(io::Error::other("/dev/pts/ptmx is not a character device"));
        }
        let fd = master.as_raw_fd();
        let unlock: libc::c_int = 0;
        // SAFETY: TIOCSPTLCK reads one c_int from the pointer, which points to a live local.
        if unsafe { libc::ioctl(fd, libc::TIOCSPTLCK, &unlock) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: TIOCGPTPEER takes open flags by value and returns a new descriptor or -1.
        let peer = unsafe {
            libc::ioctl(
                fd,
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        };
        if peer < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `peer` was just returned by the kernel and is owned by nothing else.
        let peer = unsafe { OwnedFd::from_raw_fd(peer) };
        // Blocking from here on: the relay polls before it reads.
        // SAFETY: F_GETFL/F_SETFL on a descriptor we own, with plain integer flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Pty { master, peer })
    }
}

/// Make `fd` (the pty's peer, in the child after setsid) the controlling terminal.
pub fn make_controlling(fd: BorrowedFd) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value (0: do not steal from another session).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copy the window size of the terminal `from` to `to`; nothing when `from` has none.
pub fn copy_window_size(from: BorrowedFd, to: BorrowedFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the pointer, which points to a live local; TIOCSWINSZ
    // reads one from it.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// The host terminal in raw mode (keys go to the container's pty as typed); restored on drop.
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSADRAIN, &raw)?;
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}

/// Move what `from` has to `to` (one read). `Ok(false)`: `from` is at its end (a pty master reads EIO
/// once no process holds the peer any more).
pub fn pump(mut from: &File, mut to: impl Write) -> io::Result<bool> {
    let mut buf = [0u8; 8192];
    match from.read(&mut buf) {
        Ok(0) => Ok(false),
        Ok(n) => {
            to.write_all(&buf[..n])?;
            to.flush()?;
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
        Err(e) => Err(e),
    }
}
