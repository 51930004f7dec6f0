//! Dropping root after the listeners are bound (`-u USER`), as the original msgbus did.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// `user`'s uid and primary gid.
pub fn lookup(user: &str) -> io::Result<(libc::uid_t, libc::gid_t)> {
    let name = CString::new(user)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad user name"))?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwnam_r fills `pwd` with pointers into `buf`, which outlives their use here.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user {user}"),
        ));
    }
    Ok((pwd.pw_uid, pwd.pw_gid))
}

/// Makes `path` owned by `user` (and its group), so that it stays writable after `-u`.
pub fn give(path: &Path, user: &str) -> io::Result<()> {
    let (uid, gid) = lookup(user)?;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

/// Switches to `user`'s uid and primary gid, leaving no supplementary groups.
pub fn switch_to(user: &str) -> io::Result<()> {
    let (uid, gid) = lookup(user)?;
    // SAFETY: plain libc calls; order matters: groups and gid while still root, uid last.
    unsafe {
        if libc::geteuid() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "-u needs to start as root",
            ));
        }
        if libc::setgroups(1, &gid) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(io::Error::last_os_error());
        }
        // Root must not be recoverable.
        if libc::setuid(0) == 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "could regain root after switching user",
            ));
        }
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no failure mode.
    unsafe { libc::geteuid() == 0 }
}
