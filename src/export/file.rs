//! [`FileExport`]: an export file that appears under its name only when complete.
//!
//! Invariant: rows go to a hidden `.NAME.partial` beside the output; [`FileExport::finish`]
//! ends the format and renames it into place; dropping an unfinished export removes the partial
//! file, so an error or an interruption never leaves a truncated file under the output's name.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use super::columns::{Columns, ExportRow};
use super::{Format, RowWriter, write_error};
use crate::error::{Error, Result};

/// An export file being written.
pub struct FileExport {
    writer: Option<Box<dyn RowWriter>>,
    partial: PathBuf,
    out: PathBuf,
}

impl std::fmt::Debug for FileExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileExport").field("out", &self.out).finish_non_exhaustive()
    }
}

fn partial_path(out: &Path) -> PathBuf {
    let name = out.file_name().map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.partial"))
}

impl FileExport {
    /// Starts an export of rows of `columns` in `format` to `out`; `metadata` goes into the
    /// file metadata where the format has some (`GeoParquet`).
    pub fn create(out: &Path, format: Format, columns: Columns, metadata: &[(String, String)]) -> Result<FileExport> {
        let partial = partial_path(out);
        let file = std::fs::File::create(&partial).map_err(|e| {
            Error::bad_input(
                out,
                format!("cannot create the export file: {e}; check that the folder exists and is writable"),
            )
        })?;
        let mut me = FileExport { writer: None, partial, out: out.to_path_buf() };
        me.writer = Some(super::writer(format, columns, Box::new(BufWriter::new(file)), metadata)?);
        Ok(me)
    }

    /// Writes one row.
    pub fn write_row(&mut self, row: &ExportRow<'_>) -> Result<()> {
        match self.writer.as_mut() {
            Some(w) => w.write_row(row),
            None => Err(Error::Invalid("the export is already finished".into())),
        }
    }

    /// Ends the file and renames it into place. Returns the rows written.
    pub fn finish(mut self) -> Result<u64> {
        let w = self.writer.take().ok_or_else(|| Error::Invalid("the export is already finished".into()))?;
        let rows = w.finish()?;
        std::fs::rename(&self.partial, &self.out).map_err(|e| write_error(&e))?;
        Ok(rows)
    }
}

impl Drop for FileExport {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}
