//! `strand report --png DIR`: each chart of the page as a PNG, rasterized from the very SVG the
//! page holds (resvg), so the images and the page never disagree.

use super::html::Figure;
use resvg::{tiny_skia, usvg};
use std::path::{Path, PathBuf};

/// Pixels per SVG unit: 900-unit charts become 1,800 pixels wide, sharp on slides and papers.
pub const SCALE: f32 = 2.0;

/// Why a chart could not be written as a PNG.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {why}")]
pub struct PngError {
    /// The image (or the directory) being written.
    pub path: PathBuf,
    /// What went wrong.
    pub why: String,
}

/// Write each figure as `DIR/NAME.png` (creating `dir`); returns the files, in page order.
pub fn write_figures(figures: &[Figure], dir: &Path) -> Result<Vec<PathBuf>, PngError> {
    std::fs::create_dir_all(dir).map_err(|e| PngError { path: dir.to_path_buf(), why: e.to_string() })?;
    let mut options = usvg::Options::default();
    // The charts name DejaVu Sans (then sans-serif); the system's fonts have it where plots work.
    options.fontdb_mut().load_system_fonts();
    let mut files = Vec::with_capacity(figures.len());
    for f in figures {
        let path = dir.join(format!("{}.png", f.name));
        let fail = |why: String| PngError { path: path.clone(), why };
        let tree = usvg::Tree::from_str(&f.svg, &options).map_err(|e| fail(e.to_string()))?;
        let size = tree.size().to_int_size().scale_by(SCALE).ok_or_else(|| fail("the chart has no size".into()))?;
        let mut pixmap =
            tiny_skia::Pixmap::new(size.width(), size.height()).ok_or_else(|| fail("the chart has no size".into()))?;
        resvg::render(&tree, tiny_skia::Transform::from_scale(SCALE, SCALE), &mut pixmap.as_mut());
        pixmap.save_png(&path).map_err(|e| fail(e.to_string()))?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_that_is_not_svg_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = [Figure { name: "running", svg: "<svg".into() }];
        let e = write_figures(&bad, dir.path()).expect_err("not an SVG");
        assert!(e.to_string().contains("running.png"), "{e}");
        let good = [Figure {
            name: "dot",
            svg: r##"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="5"><rect width="4" height="4" fill="#4e79a7"/></svg>"##
                .into(),
        }];
        let files = write_figures(&good, &dir.path().join("new")).expect("written");
        let bytes = std::fs::read(&files[0]).expect("png");
        assert_eq!(&bytes[1..4], b"PNG");
        // IHDR: width and height, at SCALE pixels a unit.
        assert_eq!((&bytes[16..20], &bytes[20..24]), (&20u32.to_be_bytes()[..], &10u32.to_be_bytes()[..]));
    }
}
