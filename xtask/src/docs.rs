//! `cargo xtask docs`: every link in the docs resolves.
//!
//! Fails, naming file and line, when
//! - a Markdown file of the repository links a file that does not exist, or
//!   a `#heading` that the target page does not have (GitHub's slugs);
//! - source text (Rust, TOML, Python, shell) cites a Markdown page that does
//!   not exist, or a `page.md#anchor` whose heading does not; paths in source
//!   are taken from the repository's root, and only those whose first part
//!   is there (`usr/share/doc/...` is a path on another machine);
//! - source cites a README heading in quotes (`README, "Toolchain"`), which
//!   no check can follow: cite `docs/page.md#anchor` instead.
//!
//! Markdown is parsed with pulldown-cmark, so links in code blocks are not
//! links and reference-style links are resolved as GitHub resolves them.
use std::{
    collections::{HashMap, HashSet},
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

use crate::workspace;

/// Source files whose text is searched for citations, by extension.
const SOURCE_EXTENSIONS: [&str; 5] = ["rs", "toml", "py", "sh", "service"];

/// This file: its tests hold broken citations on purpose.
const SELF: &str = "xtask/src/docs.rs";

pub fn run() -> Result<()> {
    let root = workspace();
    let report = check(&root)?;
    for problem in &report.problems {
        eprintln!("{problem}");
    }
    if !report.problems.is_empty() {
        bail!(
            "{} broken link(s) or citation(s) in the docs (file:line above)",
            report.problems.len()
        );
    }
    eprintln!(
        "xtask docs: {} links in {} Markdown files and {} citations in source resolve",
        report.links, report.pages, report.citations
    );
    Ok(())
}

/// A link or citation that does not resolve.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    /// Relative to the repository's root.
    file: PathBuf,
    line: usize,
    what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.what)
    }
}

#[derive(Default)]
struct Report {
    pages: usize,
    links: usize,
    citations: usize,
    problems: Vec<Problem>,
}

/// Checks every Markdown file and source file under `root`.
fn check(root: &Path) -> Result<Report> {
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    let mut pages = Pages::new(root);
    let mut report = Report::default();
    for rel in &files {
        let text = std::fs::read_to_string(root.join(rel))
            .with_context(|| format!("reading {}", rel.display()))?;
        let is_markdown = rel.extension().is_some_and(|e| e == "md");
        if is_markdown {
            report.pages += 1;
            for link in parse(&text).links {
                report.links += 1;
                if let Some(what) = pages.resolve(rel, &link.dest) {
                    report.problems.push(Problem {
                        file: rel.clone(),
                        line: link.line,
                        what,
                    });
                }
            }
        } else if rel != Path::new(SELF) {
            for (at, cite) in citations(&text) {
                if !cite.in_repo(root) {
                    continue;
                }
                report.citations += 1;
                let what = match &cite {
                    Citation::Quoted(heading) => Some(format!(
                        "cites the README heading {heading:?} in quotes: cite docs/PAGE.md#anchor instead"
                    )),
                    Citation::Page(dest) => pages.resolve(Path::new("."), dest),
                };
                if let Some(what) = what {
                    report.problems.push(Problem {
                        file: rel.clone(),
                        line: line_of(&text, at),
                        what,
                    });
                }
            }
        }
    }
    Ok(report)
}

/// The repository's Markdown and source files, relative to `root`; build
/// output (`target`) and hidden directories are left out.
pub(crate) fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let path = entry.path();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "md" || SOURCE_EXTENSIONS.contains(&e))
        {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
    Ok(())
}

/// What a Markdown page offers and points at.
#[derive(Default)]
struct Page {
    /// GitHub's anchors for the page's headings.
    anchors: HashSet<String>,
    links: Vec<Link>,
}

struct Link {
    line: usize,
    dest: String,
}

fn parse(text: &str) -> Page {
    let mut page = Page::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                // GitHub numbers repeated headings: `x`, `x-1`, `x-2`.
                let n = seen.entry(base.clone()).or_insert(0);
                let anchor = if *n == 0 {
                    base.clone()
                } else {
                    format!("{base}-{n}")
                };
                *n += 1;
                page.anchors.insert(anchor);
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                page.links.push(Link {
                    line: line_of(text, range.start),
                    dest: dest_url.into_string(),
                });
            }
            _ => {}
        }
    }
    page
}

/// GitHub's anchor for a heading: lower case; letters, digits, `_` and `-`
/// kept, spaces made `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Parsed Markdown pages, read once each.
struct Pages<'r> {
    root: &'r Path,
    parsed: HashMap<PathBuf, Option<Page>>,
}

impl<'r> Pages<'r> {
    fn new(root: &'r Path) -> Self {
        Pages {
            root,
            parsed: HashMap::new(),
        }
    }

    /// Why `dest`, linked from the file `from` (relative to the root; `.`
    /// for root-relative citations), does not resolve; None if it does.
    fn resolve(&mut self, from: &Path, dest: &str) -> Option<String> {
        if dest.contains("://") || dest.starts_with("mailto:") {
            return None;
        }
        let (path, anchor) = match dest.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (dest, None),
        };
        let target = if path.is_empty() {
            from.to_path_buf()
        } else if let Some(abs) = path.strip_prefix('/') {
            PathBuf::from(abs)
        } else {
            normalise(&from.parent().unwrap_or(Path::new("")).join(path))
        };
        if !self.root.join(&target).exists() {
            return Some(format!(
                "links {dest:?}: {} does not exist",
                target.display()
            ));
        }
        let anchor = anchor.filter(|a| !a.is_empty())?;
        if target.extension().is_none_or(|e| e != "md") {
            return None; // GitHub's line anchors (#L10) and the like.
        }
        let page = self
            .parsed
            .entry(target.clone())
            .or_insert_with(|| {
                std::fs::read_to_string(self.root.join(&target))
                    .ok()
                    .map(|t| parse(&t))
            })
            .as_ref()?;
        if page.anchors.contains(anchor) {
            None
        } else {
            Some(format!(
                "links {dest:?}: {} has no heading with the anchor #{anchor}",
                target.display()
            ))
        }
    }
}

/// `a/./b/../c` as `a/c`, without touching the filesystem.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A reference to the docs in source text.
#[derive(Debug, PartialEq, Eq)]
enum Citation {
    /// `docs/design.md#anchor`, `README.md`: a path from the root.
    Page(String),
    /// `README, "Heading"`: the heading's text.
    Quoted(String),
}

impl Citation {
    /// Whether a cited path starts in the repository (`docs/...`), rather
    /// than naming a path elsewhere (`usr/share/doc/...` in a package).
    fn in_repo(&self, root: &Path) -> bool {
        match self {
            Citation::Quoted(_) => true,
            Citation::Page(p) => {
                let first = p.trim_start_matches("../").split(['/', '#']).next();
                first.is_some_and(|f| root.join(f).exists())
            }
        }
    }
}

/// The doc citations in a source file: every `*.md` path with a directory
/// or named README/CHANGELOG, with its `#anchor` if any, and every README
/// heading cited in quotes; each with its byte offset.
fn citations(text: &str) -> Vec<(usize, Citation)> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let is_anchor = |c: char| c.is_ascii_alphanumeric() || "_-".contains(c);
    let mut out = Vec::new();
    for (at, _) in text.match_indices(".md") {
        let end = at + 3;
        let rest = &text[end..];
        if rest.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            continue; // `.mdx`, `.md5`
        }
        let start = text[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_path(c))
            .last()
            .map_or(at, |(i, _)| i);
        let path = text[start..end].trim_start_matches("./");
        let name = path.rsplit('/').next().unwrap_or(path);
        if !path.contains('/') && name != "README.md" && name != "CHANGELOG.md" {
            continue;
        }
        let anchor: String = rest
            .strip_prefix('#')
            .map(|a| a.chars().take_while(|&c| is_anchor(c)).collect())
            .unwrap_or_default();
        let cite = if anchor.is_empty() {
            path.to_string()
        } else {
            format!("{path}#{anchor}")
        };
        out.push((start, Citation::Page(cite)));
    }
    for marker in ["README, \"", "README's \""] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            let heading = rest.split('"').next().unwrap_or_default();
            out.push((at, Citation::Quoted(heading.to_string())));
        }
    }
    out.sort_by_key(|&(at, _)| at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch repository under the system's temp directory.
    struct Repo(PathBuf);

    impl Repo {
        fn new(name: &str, files: &[(&str, &str)]) -> Repo {
            let root =
                std::env::temp_dir().join(format!("xtask-docs-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for (path, text) in files {
                let path = root.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, text).unwrap();
            }
            Repo(root)
        }

        fn problems(&self) -> Vec<String> {
            check(&self.0)
                .expect("check runs")
                .problems
                .iter()
                .map(ToString::to_string)
                .collect()
        }
    }

    impl Drop for Repo {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn slugs_are_githubs() {
        assert_eq!(slug("Start, attach, verify"), "start-attach-verify");
        assert_eq!(
            slug("The `tcp_timestamps=2` trade-off"),
            "the-tcp_timestamps2-trade-off"
        );
        assert_eq!(
            slug("What each kernel supports"),
            "what-each-kernel-supports"
        );
        assert_eq!(slug("Soak (5 min)"), "soak-5-min");
    }

    #[test]
    fn repeated_headings_are_numbered() {
        let page = parse("# Results\n\n## Results\n\n### Results\n");
        for anchor in ["results", "results-1", "results-2"] {
            assert!(page.anchors.contains(anchor), "{anchor} missing");
        }
    }

    #[test]
    fn links_in_code_are_not_links() {
        let page = parse("```\n[x](nowhere.md)\n```\n\n`[y](nowhere.md)`\n\n[z](here.md)\n");
        let dests: Vec<_> = page.links.iter().map(|l| l.dest.as_str()).collect();
        assert_eq!(dests, ["here.md"]);
        assert_eq!(page.links[0].line, 7);
    }

    #[test]
    fn good_links_pass() {
        let repo = Repo::new(
            "good",
            &[
                (
                    "README.md",
                    "# synguard\n\nSee [running](docs/operating.md#start-attach-verify), [up](#synguard), [ref][r].\n\n[r]: docs/design.md\n",
                ),
                (
                    "docs/operating.md",
                    "# Operating\n\n## Start, attach, verify\n\n[Back](../README.md#synguard)\n",
                ),
                (
                    "docs/design.md",
                    "# Design\n\n[web](https://example.invalid/x#y)\n",
                ),
                (
                    "src/main.rs",
                    "// Why: docs/design.md#design.\nfn main() {}\n",
                ),
            ],
        );
        assert_eq!(repo.problems(), Vec::<String>::new());
    }

    #[test]
    fn a_missing_file_or_heading_fails_with_file_and_line() {
        let repo = Repo::new(
            "broken",
            &[
                ("README.md", "# synguard\n\nSee [it](docs/gone.md).\n"),
                (
                    "docs/design.md",
                    "# Design\n\n\n[x](../README.md#no-such-heading) and [y](#design)\n",
                ),
            ],
        );
        assert_eq!(
            repo.problems(),
            [
                "README.md:3: links \"docs/gone.md\": docs/gone.md does not exist",
                "docs/design.md:4: links \"../README.md#no-such-heading\": README.md has no heading with the anchor #no-such-heading",
            ]
        );
    }

    #[test]
    fn source_citations_are_checked() {
        let repo = Repo::new(
            "source",
            &[
                ("docs/design.md", "# Design\n\n## Two programs\n"),
                (
                    "src/lib.rs",
                    "//! Good: docs/design.md#two-programs.\n// Gone: docs/design.md#one-program.\n/// (README, \"Toolchain\")\nfn f() {}\n",
                ),
                (
                    "build.toml",
                    "# docs/missing.md, not usr/share/doc/x/README.md\n",
                ),
            ],
        );
        assert_eq!(
            repo.problems(),
            [
                "build.toml:1: links \"docs/missing.md\": docs/missing.md does not exist",
                "src/lib.rs:2: links \"docs/design.md#one-program\": docs/design.md has no heading with the anchor #one-program",
                "src/lib.rs:3: cites the README heading \"Toolchain\" in quotes: cite docs/PAGE.md#anchor instead",
            ]
        );
    }

    #[test]
    fn citations_are_found_in_text() {
        let found =
            |text| -> Vec<Citation> { citations(text).into_iter().map(|(_, c)| c).collect() };
        assert_eq!(
            found("see docs/a.md#b-c, README.md and x.md; tests/README.md#lab."),
            [
                Citation::Page("docs/a.md#b-c".into()),
                Citation::Page("README.md".into()),
                Citation::Page("tests/README.md#lab".into()),
            ]
        );
        assert_eq!(
            found("format!(\"docs/benchmarks/{date}.md\") a.mdx"),
            Vec::<Citation>::new()
        );
    }
}
