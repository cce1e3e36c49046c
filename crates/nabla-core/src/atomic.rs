//! The one way nabla writes a file: atomically, never over one of its own inputs.
//!
//! [`write`] puts the bytes in a new temporary file created exclusively in the target's folder
//! (`tempfile`'s `NamedTempFile`, so no two writers share it), syncs it, renames it over the
//! target, then syncs the folder so that the rename itself survives a crash. Any failure — a full
//! disk included — leaves the old file as it was and removes the temporary file. An existing
//! target keeps its permission bits; a new one gets `0666` less the umask, as `File::create` would.

use std::fs::{self, File, Permissions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (see the module documentation).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    // A symbolic link is written through (its target replaced), not replaced by a file.
    let resolved = fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_symlink())
        .and_then(|_| fs::canonicalize(path).ok());
    let path = resolved.as_deref().unwrap_or(path);
    let io = |source| Error::Io { path: path.display().to_string(), source };
    let dir = folder_of(path);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "nabla".into());
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    let kept: Option<Permissions> = fs::metadata(path).ok().map(|m| m.permissions());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Applied when the file is created, so the umask still applies to a new file.
        builder.permissions(kept.clone().unwrap_or_else(|| Permissions::from_mode(0o666)));
    }
    let mut tmp = builder.tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    if let Some(p) = kept {
        // The umask may have cleared bits the old file had.
        tmp.as_file().set_permissions(p).map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    sync_folder(dir).map_err(|source| Error::Io {
        path: format!("{} (syncing its folder after the rename)", path.display()),
        source,
    })
}

/// Makes a rename in `dir` durable. A failure is reported, except where the file system has no
/// such thing as syncing a folder (`EINVAL`) or the platform cannot open one.
fn sync_folder(dir: &Path) -> std::io::Result<()> {
    if cfg!(not(unix)) {
        return Ok(());
    }
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
        other => other,
    }
}

/// The folder a file of `path` lives in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `path` with its folder resolved (symbolic links, `..`), whether or not the file exists.
fn resolved(path: &Path) -> Option<PathBuf> {
    path.canonicalize().ok().or_else(|| Some(folder_of(path).canonicalize().ok()?.join(path.file_name()?)))
}

/// Whether `a` and `b` name the same file (also through links or another spelling of the path).
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    if let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) {
        use std::os::unix::fs::MetadataExt;
        return (ma.dev(), ma.ino()) == (mb.dev(), mb.ino());
    }
    matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

/// Refuses an output that would overwrite an input or another output of the same command:
/// `files` are `(flag, path)` pairs, the outputs those whose flag is in `outputs`.
pub fn refuse_overwriting(files: &[(&str, &Path)], outputs: &[&str]) -> Result<()> {
    for (i, (flag, out)) in files.iter().enumerate() {
        if !outputs.contains(flag) {
            continue;
        }
        if let Some((other, _)) =
            files.iter().enumerate().find(|(j, (_, p))| *j != i && same_file(out, p)).map(|(_, f)| f)
        {
            return Err(Error::invalid(
                *flag,
                format!(
                    "{} is also given as {other}; writing it would destroy that file: name another file",
                    out.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_file_and_keeps_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        write(&path, b"one").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"one");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
            write(&path, b"two").unwrap();
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        }
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["out.csv"], "no temporary file is left");
        assert!(write(&dir.path().join("missing/x"), b"z").is_err());
        #[cfg(unix)]
        {
            let link = dir.path().join("link.csv");
            std::os::unix::fs::symlink(&path, &link).unwrap();
            write(&link, b"three").unwrap();
            assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
            assert_eq!(fs::read(&path).unwrap(), b"three", "written through the link");
        }
    }

    #[test]
    fn outputs_that_name_an_input_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        fs::write(&input, "x").unwrap();
        let spelled = dir.path().join(".").join("in.csv");
        let fresh = dir.path().join("out.csv");
        let e = refuse_overwriting(&[("--input", &input), ("--output", &spelled)], &["--output"]).unwrap_err();
        assert!(e.to_string().contains("also given as --input"), "{e}");
        refuse_overwriting(&[("--input", &input), ("--output", &fresh)], &["--output"]).unwrap();
        // Two outputs naming one new file.
        let e = refuse_overwriting(&[("--save", &fresh), ("--checkpoint", &fresh)], &["--save", "--checkpoint"]);
        assert!(e.is_err());
        #[cfg(unix)]
        {
            let link = dir.path().join("link.csv");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            assert!(refuse_overwriting(&[("--input", &input), ("--output", &link)], &["--output"]).is_err());
        }
    }

    /// A full disk (a 64 KiB tmpfs, where this test may mount one) leaves the old file intact,
    /// reports the error and leaves no temporary file.
    #[test]
    fn a_full_disk_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return;
        }
        let path = dir.path().join("model.safetensors");
        let result = (|| {
            write(&path, b"the old model")?;
            write(&path, &vec![7u8; 256 * 1024])
        })();
        let old = fs::read(&path);
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        let _ = std::process::Command::new("umount").arg(dir.path()).status();
        let e = result.unwrap_err();
        assert!(e.to_string().contains("model.safetensors"), "{e}");
        assert_eq!(old.unwrap(), b"the old model");
        assert_eq!(left, ["model.safetensors"]);
    }
}
