//! Reading a config or data file as text: an error names the file, and for
//! bytes that are not UTF-8 the line they are on, as every other error
//! about a file's content does.

use std::path::Path;

use anyhow::{Context, Result};

/// The file at `path` as text.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        anyhow::anyhow!(
            "{}: line {line}: not UTF-8 text (byte {at}); a config is a TOML text file",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_that_are_not_utf8_are_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, b"a = 1\nb = \"\xff\"\n").unwrap();
        let msg = format!("{:#}", read_text(&path).unwrap_err());
        assert!(msg.contains("x.toml: line 2: not UTF-8"), "{msg}");
        std::fs::write(&path, "a = 1\n").unwrap();
        assert_eq!(read_text(&path).unwrap(), "a = 1\n");
    }
}
