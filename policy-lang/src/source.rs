//! Source files handed to the language by its caller.
//!
//! The language crate does no I/O: the caller reads files (or embedded profiles) and adds
//! them here; every span refers to a [`FileId`] of this map.

use serde::Serialize;

/// Index of a file in a [`SourceMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FileId(pub usize);

/// The files of one compilation: names as the user wrote them, and their text.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<(String, String)>,
    /// Byte offset of each line's start, per file (for [`SourceMap::line_col`]).
    lines: Vec<Vec<usize>>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        self.files.push((name.into(), text));
        self.lines.push(starts);
        FileId(self.files.len() - 1)
    }

    /// Line and column (both 1-based; the column counts characters) of byte `pos` of
    /// file `id`, in logarithmic time.
    pub fn line_col(&self, id: FileId, pos: usize) -> (usize, usize) {
        let text = self.text(id);
        let pos = pos.min(text.len());
        let starts = &self.lines[id.0];
        let line = starts.partition_point(|s| *s <= pos);
        let start = starts[line - 1];
        let col = text.get(start..pos).map_or(0, |t| t.chars().count()) + 1;
        (line, col)
    }

    pub fn name(&self, id: FileId) -> &str {
        &self.files[id.0].0
    }

    pub fn text(&self, id: FileId) -> &str {
        &self.files[id.0].1
    }

    pub fn find(&self, name: &str) -> Option<FileId> {
        self.files.iter().position(|(n, _)| n == name).map(FileId)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(n, t)| (n.as_str(), t.as_str()))
    }
}
