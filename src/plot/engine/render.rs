//! Writing a figure to a file: the output format from the extension, the
//! output directory, and the PNG path (drawn at [`PNG_SCALE`]x and
//! box-filtered down, which anti-aliases the lines) or the SVG path. Any
//! [`Figure`] (line panels, heatmaps) goes through [`write_figure`].

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{ensure_font, Scale, AB_GLYPH_EM, SVG_EM};

/// Supersampling factor for PNG output.
const PNG_SCALE: u32 = 3;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Format {
    Png,
    Svg,
}

fn format_of(out: &Path) -> Result<Format> {
    let ext = out
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => bail!(
            "cannot plot to {}: unsupported extension (use .png or .svg)",
            out.display()
        ),
    }
}

/// Something drawable into a PNG or SVG file of a fixed size.
pub(super) trait Figure {
    /// Size in output pixels (the same for PNG and SVG).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, sc: Scale) -> Result<()>;
}

/// Checks the extension of `out`, loads the font and creates `out`'s directory.
pub(super) fn prepare_output(out: &Path) -> Result<Format> {
    let format = format_of(out)?;
    ensure_font()?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {} for plot", dir.display()))?;
    }
    Ok(format)
}

pub(super) fn write_figure(fig: &impl Figure, format: Format, out: &Path) -> Result<()> {
    let (w, h) = fig.size();
    let ctx = || format!("writing plot {}", out.display());
    match format {
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                fig.draw(&root, Scale { s: 1.0, em: SVG_EM })
                    .with_context(ctx)?;
                root.present().map_err(backend_err).with_context(ctx)?;
            }
            std::fs::write(out, svg).with_context(ctx)?;
        }
        Format::Png => {
            let s = PNG_SCALE;
            let (bw, bh) = (w * s, h * s);
            let mut big = vec![0u8; (bw * bh * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut big, (bw, bh)).into_drawing_area();
                fig.draw(
                    &root,
                    Scale {
                        s: s as f64,
                        em: AB_GLYPH_EM,
                    },
                )
                .with_context(ctx)?;
                root.present().map_err(backend_err).with_context(ctx)?;
            }
            let small = downsample(&big, (bw, bh), s);
            let mut backend = BitMapBackend::new(out, (w, h));
            backend
                .blit_bitmap((0, 0), (w, h), &small)
                .map_err(backend_err)
                .with_context(ctx)?;
            backend.present().map_err(backend_err).with_context(ctx)?;
        }
    }
    Ok(())
}

pub(super) fn backend_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting backend error: {e:?}")
}

/// Box filter: averages `s`x`s` blocks of an RGB buffer.
fn downsample(big: &[u8], (bw, bh): (u32, u32), s: u32) -> Vec<u8> {
    let (w, h) = ((bw / s) as usize, (bh / s) as usize);
    let (bw, s) = (bw as usize, s as usize);
    let mut small = vec![0u8; w * h * 3];
    let n = (s * s) as u32;
    for y in 0..h {
        for x in 0..w {
            let mut acc = [0u32; 3];
            for dy in 0..s {
                let row = (y * s + dy) * bw;
                for dx in 0..s {
                    let i = (row + x * s + dx) * 3;
                    for c in 0..3 {
                        acc[c] += big[i + c] as u32;
                    }
                }
            }
            let o = (y * w + x) * 3;
            for c in 0..3 {
                small[o + c] = ((acc[c] + n / 2) / n) as u8;
            }
        }
    }
    small
}
