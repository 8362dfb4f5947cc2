//! The dated results page a bench run writes: `docs/benchmarks/<date>.md`
//! with the commit measured and the machine, linked from `docs/benchmarks.md`,
//! so results are recorded by the bench rather than edited by hand.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{Context, Result, bail};

/// The line in `docs/benchmarks.md` after which each run's link goes.
pub const INDEX_MARKER: &str = "<!-- bench pages: newest first -->";

/// Where a page goes, relative to the workspace: full runs into the docs,
/// `--quick` ones (rough figures) beside the JSON.
pub const DOCS_DIR: &str = "docs/benchmarks";
pub const QUICK_DIR: &str = "target/bench";
pub const INDEX: &str = "docs/benchmarks.md";

/// What identifies a run: when, and which code it measured.
pub struct Run {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// Short commit id, or "unknown" outside a git checkout.
    pub commit: String,
    /// The tree had changes not in `commit`.
    pub dirty: bool,
    /// The parts measured ("cost", "flood", "soak").
    pub parts: Vec<&'static str>,
}

impl Run {
    pub fn now(workspace: &Path, parts: Vec<&'static str>) -> Run {
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(workspace)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        Run {
            date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10]
                .to_string(),
            commit: git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty()),
            parts,
        }
    }

    fn commit_text(&self) -> String {
        if self.dirty {
            format!("{} (with uncommitted changes)", self.commit)
        } else {
            self.commit.clone()
        }
    }
}

/// The page: title, run and machine facts, then the report's sections as
/// the bench printed them.
pub fn render(run: &Run, machine: &str, sections: &[String], elapsed: Duration) -> String {
    let mut page = format!(
        "# Benchmarks of {}\n\nWritten by `cargo xtask bench` at commit {} ({}; {} s in all).\n\n{}\n\nHow these are measured, and how to read them: [benchmarks.md](../benchmarks.md).\n",
        run.date,
        run.commit_text(),
        run.parts.join(", "),
        elapsed.as_secs(),
        machine.trim(),
    );
    for section in sections {
        page.push('\n');
        page.push_str(section.trim());
        page.push('\n');
    }
    page
}

/// `dir/DATE.md`, or `DATE-2.md`, `DATE-3.md`... if earlier runs of the
/// day are there.
pub fn free_path(dir: &Path, date: &str) -> PathBuf {
    let first = dir.join(format!("{date}.md"));
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| dir.join(format!("{date}-{n}.md")))
        .find(|p| !p.exists())
        .expect("a free name")
}

/// `index` with a link to `page` (a file name in `DOCS_DIR`) added first,
/// right after [`INDEX_MARKER`].
pub fn add_to_index(index: &str, page: &str, run: &Run) -> Result<String> {
    let Some(at) = index.find(INDEX_MARKER) else {
        bail!("no line {INDEX_MARKER:?} in {INDEX} to add the page after");
    };
    let end = at + INDEX_MARKER.len();
    let title = page.trim_end_matches(".md");
    let line = format!(
        "\n- [{title}](benchmarks/{page}): {} at {}",
        run.parts.join(", "),
        run.commit_text()
    );
    Ok(format!("{}{line}{}", &index[..end], &index[end..]))
}

/// Writes the page (and, for a full run, its line in the index); returns
/// the page's path.
pub fn write(workspace: &Path, quick: bool, run: &Run, page: &str) -> Result<PathBuf> {
    let dir = workspace.join(if quick { QUICK_DIR } else { DOCS_DIR });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = free_path(&dir, &run.date);
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    if !quick {
        let index_path = workspace.join(INDEX);
        let index = std::fs::read_to_string(&index_path)
            .with_context(|| format!("reading {}", index_path.display()))?;
        let name = path.file_name().expect("a file").to_string_lossy();
        let index = add_to_index(&index, &name, run)?;
        std::fs::write(&index_path, index)
            .with_context(|| format!("writing {}", index_path.display()))?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dirty: bool) -> Run {
        Run {
            date: "2026-12-03".into(),
            commit: "abc1234".into(),
            dirty,
            parts: vec!["cost", "flood"],
        }
    }

    #[test]
    fn the_page_names_date_commit_machine_and_keeps_the_sections() {
        let page = render(
            &run(false),
            "Machine: 2 CPUs, AMD EPYC, Linux 6.18.44\n",
            &[
                "## Per-packet cost\n\n| class |\n".into(),
                "\n## Flood lab\n\n| defence |\n".into(),
            ],
            Duration::from_secs(301),
        );
        assert_eq!(
            page,
            "# Benchmarks of 2026-12-03\n\n\
             Written by `cargo xtask bench` at commit abc1234 (cost, flood; 301 s in all).\n\n\
             Machine: 2 CPUs, AMD EPYC, Linux 6.18.44\n\n\
             How these are measured, and how to read them: [benchmarks.md](../benchmarks.md).\n\n\
             ## Per-packet cost\n\n| class |\n\n\
             ## Flood lab\n\n| defence |\n"
        );
    }

    #[test]
    fn a_dirty_tree_is_said() {
        let page = render(&run(true), "Machine: x", &[], Duration::ZERO);
        assert!(
            page.contains("at commit abc1234 (with uncommitted changes)"),
            "{page}"
        );
    }

    #[test]
    fn a_second_run_of_the_day_gets_its_own_page() {
        let dir = std::env::temp_dir().join(format!("xtask-page-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(free_path(&dir, "2026-12-03"), dir.join("2026-12-03.md"));
        std::fs::write(dir.join("2026-12-03.md"), "").unwrap();
        assert_eq!(free_path(&dir, "2026-12-03"), dir.join("2026-12-03-2.md"));
        std::fs::write(dir.join("2026-12-03-2.md"), "").unwrap();
        assert_eq!(free_path(&dir, "2026-12-03"), dir.join("2026-12-03-3.md"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_index_gets_the_newest_page_first() {
        let index = format!(
            "## Results\n\n{INDEX_MARKER}\n- [2026-12-02](benchmarks/2026-12-02.md): old\n"
        );
        let out = add_to_index(&index, "2026-12-03.md", &run(false)).unwrap();
        assert_eq!(
            out,
            format!(
                "## Results\n\n{INDEX_MARKER}\n- [2026-12-03](benchmarks/2026-12-03.md): cost, flood at abc1234\n- [2026-12-02](benchmarks/2026-12-02.md): old\n"
            )
        );
        let err = add_to_index("## Results\n", "2026-12-03.md", &run(false)).unwrap_err();
        assert!(err.to_string().contains("no line"), "{err}");
    }

    #[test]
    fn the_repositorys_index_has_the_marker() {
        let index = std::fs::read_to_string(crate::workspace().join(INDEX)).unwrap();
        assert!(
            index.contains(INDEX_MARKER),
            "{INDEX} lost {INDEX_MARKER:?}"
        );
    }
}
