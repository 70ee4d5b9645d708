//! The data directory's lock: one process per data directory.
//!
//! Two processes recovering, appending to and compacting the same log
//! would each believe its own view of the files, and acknowledged writes
//! could be cut by the other's recovery. So before start-up reads or writes
//! anything in the data directory, it takes an exclusive, non-blocking lock
//! on the file `LOCK` there (`flock` on Linux, through std's
//! `File::try_lock`) and writes its pid into it; the lock is held until the
//! process exits, and the kernel drops it whatever way the process ends
//! (kill -9 included), so a stale `LOCK` file never blocks a restart.
//! A second process finds the lock taken and refuses to start, naming the
//! directory and the pid written in the file, having changed nothing (the
//! `LOCK` file it opened already existed).
//!
//! The WAL ignores files it does not know, so `LOCK` never disturbs recovery.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// Most bytes of the holder's pid read back for the error message.
const HOLDER_BYTES_MAX: u64 = 64;

/// Holds the data directory's lock for as long as it lives.
#[derive(Debug)]
pub struct DataDirLock {
    /// The locked file; dropping it (or exiting) releases the lock.
    _file: File,
}

/// Takes the lock on `datadir` (which must exist) without waiting, and
/// writes this process's pid into it. An error names the directory, and
/// the pid of the process holding the lock when another one does.
pub fn lock_datadir(datadir: &Path) -> Result<DataDirLock, String> {
    let path = datadir.join(LOCK_FILE);
    let in_dir = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file =
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(in_dir)?;
    // `File::try_lock` (std since Rust 1.89, the stated MSRV) is flock.
    let locked = file.try_lock();
    match locked {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let holder = holder_pid(&mut file);
            return Err(format!(
                "data directory {} is in use by another cashe process (pid {holder}, from {}); refusing to start",
                datadir.display(),
                path.display()
            ));
        }
        Err(TryLockError::Error(e)) => {
            return Err(format!("cannot lock data directory {}: {}", datadir.display(), in_dir(e)));
        }
    }
    let pid = std::process::id();
    let written = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(format!("{pid}\n").as_bytes()));
    written.map_err(in_dir)?;
    Ok(DataDirLock { _file: file })
}

impl DataDirLock {
    /// Undoes a start-up that created `datadir` and then failed (a port in
    /// use): removes the `LOCK` file and the directory, if nothing else is
    /// in it, so that the failure leaves no trace.
    pub fn remove_new_directory(self, datadir: &Path) {
        let _ = std::fs::remove_file(datadir.join(LOCK_FILE));
        let _ = std::fs::remove_dir(datadir);
    }
}

/// The pid the lock's holder wrote, as text for an error message.
fn holder_pid(file: &mut File) -> String {
    let mut text = String::new();
    let read =
        file.seek(SeekFrom::Start(0)).and_then(|_| file.take(HOLDER_BYTES_MAX).read_to_string(&mut text));
    match read {
        Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
        // The holder has the lock but has not written its pid yet, or the
        // file is unreadable: the lock still says the directory is in use.
        _ => "unknown".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary_dir(label: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("cashe-lock-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        dir
    }

    #[test]
    fn a_second_lock_on_a_held_directory_is_refused_with_the_holders_pid() {
        let dir = temporary_dir("held");
        let held = lock_datadir(&dir).expect("the first lock");
        let pid = std::process::id().to_string();
        assert_eq!(std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap().trim(), pid);
        // flock locks belong to an open file: a second open conflicts even
        // within this process.
        let refused = lock_datadir(&dir).expect_err("the directory is held");
        assert!(refused.contains(&dir.display().to_string()), "{refused}");
        assert!(refused.contains(&format!("pid {pid}")), "{refused}");
        drop(held);
        let again = lock_datadir(&dir).expect("a released lock can be taken again");
        drop(again);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_lock_file_left_behind_does_not_block_a_restart() {
        let dir = temporary_dir("stale");
        std::fs::write(dir.join(LOCK_FILE), "12345\n").unwrap();
        let lock = lock_datadir(&dir).expect("nobody holds the lock");
        assert_eq!(
            std::fs::read_to_string(dir.join(LOCK_FILE)).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(lock);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
