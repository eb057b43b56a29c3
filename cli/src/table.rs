//! Aligned text tables, for people at a terminal (`--json` is for scripts).

/// Columns whose header starts with `>` are right-aligned (counts); the `>` is not printed.
pub struct Table {
    headers: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self {
            headers: headers
                .iter()
                .map(|h| h.strip_prefix('>').unwrap_or(h))
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// One row; missing cells are blank.
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        self.lines(true)
    }

    /// Without the header line: for key/value blocks.
    pub fn render_rows(&self) -> String {
        self.lines(false)
    }

    fn lines(&self, header: bool) -> String {
        let width = |i: usize| {
            self.rows
                .iter()
                .map(|r| r[i].chars().count())
                .chain([self.headers[i].len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: &[&str]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| match self.right[i] {
                    true => format!("{c:>w$}", w = widths[i]),
                    false => format!("{c:<w$}", w = widths[i]),
                })
                .collect();
            format!("{}\n", padded.join("  ").trim_end())
        };
        let mut out = if header {
            line(&self.headers)
        } else {
            String::new()
        };
        for row in &self.rows {
            out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
        }
        out
    }
}

/// `text` cut to `max` characters with an ellipsis: long errors would break the table's layout
/// (`--json` keeps them whole).
pub fn clip(text: &str, max: usize) -> String {
    let first_line = text.lines().next().unwrap_or("");
    if first_line.chars().count() <= max && first_line.len() == text.len() {
        return text.to_owned();
    }
    let cut: String = first_line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_with_counts_on_the_right_and_no_trailing_space() {
        let mut t = Table::new(&["BATCH", ">PATHS", "STATUS"]);
        t.row(["E1-a", "3", "COMPLETED"]);
        t.row(["E1-bbbbbb", "1200", "—"]);
        t.row(["E1-c"]);
        assert_eq!(
            t.render(),
            "BATCH      PATHS  STATUS\n\
             E1-a           3  COMPLETED\n\
             E1-bbbbbb   1200  —\n\
             E1-c\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(["café", "x"]);
        t.row(["abc", "y"]);
        assert_eq!(t.render(), "A     B\ncafé  x\nabc   y\n");
        assert_eq!(t.render_rows(), "café  x\nabc   y\n");
    }

    #[test]
    fn clipping_keeps_short_text_and_cuts_long_or_multiline_text() {
        assert_eq!(clip("AccessDenied", 20), "AccessDenied");
        assert_eq!(clip("AccessDenied: no", 10), "AccessDen…");
        assert_eq!(clip("first\nsecond", 20), "first…");
    }
}
