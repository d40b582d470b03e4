//! Heatmaps: a table of values drawn as coloured cells (viridis, a
//! colour-blind-safe sequential map) with each value printed in its cell, a
//! two-level column header (e.g. stage, then split) and a colour bar.

use std::path::Path;

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::linear_axis;
use super::render::{backend_err, prepare_output, write_figure, Figure};
use super::style::{text_w, Scale, LABEL_EM, TICK_EM, TITLE_EM};

/// A table of values drawn as a heatmap by [`heatmap`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    pub title: String,
    /// One label per row, drawn left of the row.
    pub row_labels: Vec<String>,
    /// Column groups in order, each `(group label, column labels)`; the group
    /// label is drawn above its columns (none when empty), and groups are
    /// set a little apart.
    pub columns: Vec<(String, Vec<String>)>,
    /// `values[row][column]`, columns of all groups in order. `None` or a
    /// non-finite value is drawn as an empty grey cell.
    pub values: Vec<Vec<Option<f64>>>,
    /// The values mapped to the ends of the colour scale; values outside are clamped.
    pub range: (f64, f64),
    /// Label of the colour bar.
    pub value_label: String,
    /// Rows above which the table is split by a small gap (row groups).
    pub row_breaks: Vec<usize>,
}

/// Writes a heatmap as PNG or SVG (by the extension of `out`), sized to fit
/// its table; values are printed with two decimals. Creates parent dirs.
pub fn heatmap(h: &Heatmap, out: &Path) -> Result<()> {
    let n_cols: usize = h.columns.iter().map(|(_, c)| c.len()).sum();
    if h.values.len() != h.row_labels.len() {
        bail!(
            "heatmap {}: {} rows of values for {} row labels",
            out.display(),
            h.values.len(),
            h.row_labels.len()
        );
    }
    if let Some((i, row)) = h.values.iter().enumerate().find(|(_, r)| r.len() != n_cols) {
        bail!(
            "heatmap {}: row {i} has {} values for {n_cols} columns",
            out.display(),
            row.len()
        );
    }
    let format = prepare_output(out)?;
    let figure = HeatmapFigure::new(h);
    write_figure(&figure, format, out)
}

/// Viridis (van der Walt & Smith, matplotlib), `t` in [0, 1], from nine stops.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 45, 123),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (40, 174, 128),
        (94, 201, 98),
        (173, 220, 48),
        (253, 231, 37),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let f = t * (STOPS.len() - 1) as f64;
    let i = (f.floor() as usize).min(STOPS.len() - 2);
    let u = f - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: u8, y: u8| (x as f64 + u * (y as f64 - x as f64)).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black or white, whichever reads better on `c`.
fn text_color_on(c: RGBColor) -> RGBColor {
    let lum = (0.2126 * c.0 as f64 + 0.7152 * c.1 as f64 + 0.0722 * c.2 as f64) / 255.0;
    if lum > 0.5 {
        BLACK
    } else {
        WHITE
    }
}

const MARGIN: f64 = 14.0;
const CELL_H: f64 = 26.0;
const CELL_W_MIN: f64 = 58.0;
/// Gap between column groups and between row groups.
const GROUP_GAP: f64 = 6.0;
/// Gap between cells.
const CELL_GAP: f64 = 1.5;
const BAR_W: f64 = 16.0;
const MISSING: RGBColor = RGBColor(236, 236, 236);
const MUTED: RGBColor = RGBColor(120, 120, 120);

/// Layout in output pixels.
struct HeatmapFigure<'a> {
    h: &'a Heatmap,
    size: (u32, u32),
    title_y: f64,
    group_y: Option<f64>,
    col_label_y: f64,
    grid_x: f64,
    grid_y: f64,
    cell_w: f64,
    /// x of each column's left edge.
    col_x: Vec<f64>,
    /// y of each row's top edge.
    row_y: Vec<f64>,
    /// Colour bar: left, top, height.
    bar: (f64, f64, f64),
    bar_label_x: f64,
}

impl<'a> HeatmapFigure<'a> {
    fn new(h: &'a Heatmap) -> Self {
        let has_groups = h.columns.iter().any(|(g, _)| !g.is_empty());
        let title_h = if h.title.is_empty() {
            0.0
        } else {
            TITLE_EM * 1.7
        };
        let group_h = if has_groups { LABEL_EM * 1.7 } else { 0.0 };
        let col_h = TICK_EM * 1.8;
        let label_w = h
            .row_labels
            .iter()
            .map(|l| text_w(l, TICK_EM))
            .fold(0.0, f64::max);
        let mut cell_w = CELL_W_MIN;
        for (group, cols) in &h.columns {
            for c in cols {
                cell_w = cell_w.max(text_w(c, TICK_EM) + 14.0);
            }
            if !cols.is_empty() {
                let group_w = text_w(group, LABEL_EM) + 14.0;
                cell_w = cell_w.max((group_w - GROUP_GAP) / cols.len() as f64);
            }
        }
        let cell_w = cell_w.ceil();

        let grid_x = MARGIN + label_w + 10.0;
        let grid_y = MARGIN + title_h + group_h + col_h;
        let mut col_x = Vec::new();
        let mut x = grid_x;
        for (gi, (_, cols)) in h.columns.iter().enumerate() {
            if gi > 0 && !cols.is_empty() && !col_x.is_empty() {
                x += GROUP_GAP;
            }
            for _ in cols {
                col_x.push(x);
                x += cell_w;
            }
        }
        let grid_right = x;
        let mut row_y = Vec::new();
        let mut y = grid_y;
        for i in 0..h.row_labels.len() {
            if i > 0 && h.row_breaks.contains(&i) {
                y += GROUP_GAP;
            }
            row_y.push(y);
            y += CELL_H;
        }
        let grid_bottom = y;

        let bar_x = grid_right + 26.0;
        let bar_h = (grid_bottom - grid_y).clamp(150.0, 320.0);
        let tick_w = linear_axis(h.range.0, h.range.1, 5)
            .ticks
            .iter()
            .map(|t| text_w(&t.1, TICK_EM))
            .fold(0.0, f64::max);
        let bar_label_x = bar_x + BAR_W + 4.0 + 4.0 + tick_w + 8.0 + LABEL_EM * 0.6;
        let mut width = bar_label_x + LABEL_EM * 0.6 + MARGIN;
        width = width.max(2.0 * MARGIN + text_w(&h.title, TITLE_EM));
        let height = grid_bottom.max(grid_y + bar_h) + MARGIN;
        Self {
            h,
            size: (width.ceil() as u32, height.ceil() as u32),
            title_y: MARGIN + title_h / 2.0,
            group_y: has_groups.then_some(MARGIN + title_h + group_h / 2.0),
            col_label_y: MARGIN + title_h + group_h + col_h / 2.0,
            grid_x,
            grid_y,
            cell_w,
            col_x,
            row_y,
            bar: (bar_x, grid_y, bar_h),
            bar_label_x,
        }
    }
}

impl Figure for HeatmapFigure<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, sc: Scale) -> Result<()> {
        let h = self.h;
        let px = |v: f64| sc.px(v);
        let pt = |x: f64, y: f64| (px(x), px(y));
        let centered = |em: f64, color: &RGBColor| {
            sc.font(em)
                .color(color)
                .pos(Pos::new(HPos::Center, VPos::Center))
        };
        root.fill(&WHITE).map_err(backend_err)?;
        let text = |s: &str, at: (i32, i32), style: TextStyle| {
            root.draw(&Text::new(s.to_string(), at, style))
                .map_err(backend_err)
        };

        if !h.title.is_empty() {
            text(
                &h.title,
                pt(self.size.0 as f64 / 2.0, self.title_y),
                centered(TITLE_EM, &BLACK),
            )?;
        }

        // Column headers: group label over its columns (with a rule), then column labels.
        let mut j = 0;
        for (group, cols) in &h.columns {
            if cols.is_empty() {
                continue;
            }
            let x0 = self.col_x[j];
            let x1 = self.col_x[j + cols.len() - 1] + self.cell_w;
            if let (Some(gy), false) = (self.group_y, group.is_empty()) {
                text(group, pt((x0 + x1) / 2.0, gy), centered(LABEL_EM, &BLACK))?;
                let rule_y = gy + LABEL_EM * 0.75;
                root.draw(&PathElement::new(
                    vec![pt(x0 + 3.0, rule_y), pt(x1 - 3.0, rule_y)],
                    MUTED.stroke_width(sc.stroke(1.0)),
                ))
                .map_err(backend_err)?;
            }
            for c in cols {
                let cx = self.col_x[j] + self.cell_w / 2.0;
                text(c, pt(cx, self.col_label_y), centered(TICK_EM, &BLACK))?;
                j += 1;
            }
        }

        // Rows: label, then cells.
        let (lo, hi) = h.range;
        let span = if hi != lo { hi - lo } else { 1.0 };
        let right = sc
            .font(TICK_EM)
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        for ((label, row), &y) in h.row_labels.iter().zip(&h.values).zip(&self.row_y) {
            text(
                label,
                pt(self.grid_x - 10.0, y + CELL_H / 2.0),
                right.clone(),
            )?;
            for (v, &x) in row.iter().zip(&self.col_x) {
                let cell = [
                    pt(x, y),
                    pt(x + self.cell_w - CELL_GAP, y + CELL_H - CELL_GAP),
                ];
                let center = pt(
                    x + (self.cell_w - CELL_GAP) / 2.0,
                    y + (CELL_H - CELL_GAP) / 2.0,
                );
                match v.filter(|v| v.is_finite()) {
                    Some(v) => {
                        let c = viridis((v - lo) / span);
                        root.draw(&Rectangle::new(cell, c.filled()))
                            .map_err(backend_err)?;
                        text(
                            &format!("{v:.2}"),
                            center,
                            centered(TICK_EM, &text_color_on(c)),
                        )?;
                    }
                    None => {
                        root.draw(&Rectangle::new(cell, MISSING.filled()))
                            .map_err(backend_err)?;
                        text("–", center, centered(TICK_EM, &MUTED))?;
                    }
                }
            }
        }

        if h.row_labels.is_empty() || self.col_x.is_empty() {
            text(
                "no data",
                pt(self.grid_x + 60.0, self.grid_y + 40.0),
                centered(LABEL_EM, &MUTED),
            )?;
        }

        // Colour bar: lo at the bottom, hi at the top.
        let (bx, by, bh) = self.bar;
        let steps = 64;
        for k in 0..steps {
            let t0 = k as f64 / steps as f64;
            let t1 = (k + 1) as f64 / steps as f64;
            let (ya, yb) = (by + bh * (1.0 - t1), by + bh * (1.0 - t0));
            root.draw(&Rectangle::new(
                [pt(bx, ya), pt(bx + BAR_W, yb)],
                viridis((t0 + t1) / 2.0).filled(),
            ))
            .map_err(backend_err)?;
        }
        let thin = sc.stroke(1.0);
        root.draw(&Rectangle::new(
            [pt(bx, by), pt(bx + BAR_W, by + bh)],
            BLACK.stroke_width(thin),
        ))
        .map_err(backend_err)?;
        let left = sc
            .font(TICK_EM)
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (v, label) in linear_axis(lo, hi, 5).ticks {
            let y = by + bh * (1.0 - (v - lo) / span);
            root.draw(&PathElement::new(
                vec![pt(bx + BAR_W, y), pt(bx + BAR_W + 4.0, y)],
                BLACK.stroke_width(thin),
            ))
            .map_err(backend_err)?;
            text(&label, pt(bx + BAR_W + 8.0, y), left.clone())?;
        }
        if !h.value_label.is_empty() {
            text(
                &h.value_label,
                pt(self.bar_label_x, by + bh / 2.0),
                sc.font(LABEL_EM)
                    .transform(FontTransform::Rotate270)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_contrast() {
        assert_eq!(viridis(0.0), RGBColor(68, 1, 84));
        assert_eq!(viridis(1.0), RGBColor(253, 231, 37));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        assert_eq!(text_color_on(viridis(0.1)), WHITE);
        assert_eq!(text_color_on(viridis(0.95)), BLACK);
    }
}
