//! Dropping root after the listeners are bound (`-u USER`), as the original msgbus did.

use std::ffi::CString;
use std::io;

/// Switches to `user`'s uid and primary gid, leaving no supplementary groups.
pub fn switch_to(user: &str) -> io::Result<()> {
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
    let (uid, gid) = (pwd.pw_uid, pwd.pw_gid);
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
