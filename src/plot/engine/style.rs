//! The look shared by every figure: the embedded DejaVu Sans font (registered
//! once with plotters' `ab_glyph` support), the Okabe-Ito palette and the
//! greys, font sizes, and [`Scale`], which turns lengths and em sizes given
//! in output pixels into backend pixels (PNGs are drawn supersampled).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use anyhow::{bail, Result};
use plotters::prelude::*;
use plotters::style::register_font;

const FONT: &str = "sans-serif";
static DEJAVU_SANS: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

pub(super) fn ensure_font() -> Result<()> {
    static ONCE: Once = Once::new();
    static OK: AtomicBool = AtomicBool::new(false);
    ONCE.call_once(|| {
        let ok = register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok();
        OK.store(ok, Ordering::SeqCst);
    });
    if OK.load(Ordering::SeqCst) {
        Ok(())
    } else {
        bail!("the embedded font DejaVuSans.ttf could not be loaded")
    }
}

/// Okabe & Ito (2008) colour-blind safe palette, yellow last (weak on white).
pub(super) const PALETTE: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];
pub(super) const GRID: RGBColor = RGBColor(222, 222, 222);
pub(super) const GRID_MINOR: RGBColor = RGBColor(240, 240, 240);
pub(super) const LEGEND_BORDER: RGBColor = RGBColor(170, 170, 170);
/// Legend notes (e.g. what a band means).
pub(super) const NOTE: RGBColor = RGBColor(90, 90, 90);

/// ab_glyph's pixel scale is the font's ascent-to-descent height, not its em
/// size; for DejaVu Sans that height is (1901 + 483) / 2048 em.
pub(super) const AB_GLYPH_EM: f64 = 2384.0 / 2048.0;
/// plotters' SVG backend writes `font-size = size / 1.24`.
pub(super) const SVG_EM: f64 = 1.24;

/// Pixel scale of one rendering: lengths are given in output pixels and
/// multiplied by `s` (the supersampling factor); font sizes are em sizes in
/// output pixels.
#[derive(Clone, Copy)]
pub(super) struct Scale {
    pub(super) s: f64,
    /// Converts an em size to the size plotters expects from this backend.
    pub(super) em: f64,
}

impl Scale {
    pub(super) fn px(&self, v: f64) -> i32 {
        (v * self.s).round() as i32
    }
    pub(super) fn stroke(&self, v: f64) -> u32 {
        self.px(v).max(1) as u32
    }
    /// Font for drawing, `em` pixels high.
    pub(super) fn font(&self, em: f64) -> FontDesc<'static> {
        (FONT, em * self.s * self.em).into_font()
    }
    /// Font for measuring text as it will appear (DejaVu Sans at `em`).
    pub(super) fn measure(&self, em: f64) -> TextStyle<'static> {
        (FONT, em * self.s * AB_GLYPH_EM).into_font().into()
    }
}

pub(super) const TITLE_EM: f64 = 22.0;
pub(super) const LABEL_EM: f64 = 16.0;
pub(super) const TICK_EM: f64 = 14.0;
pub(super) const LEGEND_EM: f64 = 14.0;

/// Width in output pixels of `text` set in DejaVu Sans at `em` pixels.
pub(super) fn text_w(text: &str, em: f64) -> f64 {
    let font: FontDesc = (FONT, em * AB_GLYPH_EM).into_font();
    match font.box_size(text) {
        Ok((w, _)) => w as f64,
        Err(_) => 0.6 * em * text.chars().count() as f64,
    }
}
