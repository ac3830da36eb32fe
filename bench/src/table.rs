//! [`Table`]: rows of cells under a header, rendered aligned for the terminal or as Markdown; and [`thousands`].

use std::fmt::Write;

/// A table with a header row. Columns from [`right_aligned_from`](Self::right_aligned_from) on are numbers:
/// right-aligned in text, `---:` in Markdown.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    numbers_from: usize,
}

impl Table {
    /// An empty table, every column left-aligned.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            numbers_from: usize::MAX,
        }
    }

    /// Right-aligns the columns from `column` on.
    pub fn right_aligned_from(mut self, column: usize) -> Table {
        self.numbers_from = column;
        self
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Columns padded to their widest cell.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| {
                    if i < self.numbers_from {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        out
    }

    /// A Markdown table; `|` inside a cell is escaped.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} |", self.header.join(" | "));
        let rule: Vec<&str> = (0..self.header.len())
            .map(|i| if i < self.numbers_from { "---" } else { "---:" })
            .collect();
        let _ = writeln!(out, "|{}|", rule.join("|"));
        for row in &self.rows {
            let cells: Vec<String> = row.iter().map(|cell| cell.replace('|', "\\|")).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out
    }
}

/// `1280.4` → `1,280`; `-1234` → `-1,234`.
pub fn thousands(value: f64) -> String {
    let digits = format!("{value:.0}");
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && c != '-' && !out.ends_with('-') {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1280.0), "1,280");
        assert_eq!(thousands(50_000.0), "50,000");
        assert_eq!(thousands(1234567.0), "1,234,567");
    }

    #[test]
    fn tables_align_and_escape() {
        let mut table = Table::new(&["a", "long header"]);
        table.row(vec!["wide cell".into(), "x|y".into()]);
        assert_eq!(table.text(), "a          long header\nwide cell  x|y\n");
        assert_eq!(
            table.markdown(),
            "| a | long header |\n|---|---|\n| wide cell | x\\|y |\n"
        );
        let mut numbers = Table::new(&["name", "n"]).right_aligned_from(1);
        numbers.row(vec!["x".into(), "1,000".into()]);
        assert_eq!(numbers.text(), "name      n\nx     1,000\n");
        assert_eq!(numbers.markdown(), "| name | n |\n|---|---:|\n| x | 1,000 |\n");
    }
}
