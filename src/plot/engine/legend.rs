//! Legends: the rows (title, one entry per colour group, notes; long lists
//! cut to "… and N more"), their size, the choice of the corner of the axes
//! that covers the least data, and drawing the framed box.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::clip::P;
use super::legend_row::LegendRow;
use super::prepare::Prepared;
use super::render::backend_err;
use super::style::{text_w, Scale, LEGEND_BORDER, LEGEND_EM, NOTE};
use super::types::FigureOptions;

// Legend geometry, in output pixels.
const LEGEND_PAD: f64 = 9.0;
const LEGEND_SAMPLE: f64 = 28.0;
const LEGEND_GAP: f64 = 8.0;
pub(super) const LEGEND_ROW: f64 = LEGEND_EM * 1.55;
pub(super) const LEGEND_VPAD: f64 = 5.0;
/// At most this many rows in a legend inside the axes.
pub(super) const INSIDE_LEGEND_ROWS: usize = 12;
/// Top of a legend right of the panels (about the top of the axes).
pub(super) const RIGHT_LEGEND_TOP: f64 = 40.0;

/// Title, `entries` (at most `max_rows` rows in all; the rest summarised as
/// "… and N more"), then notes.
pub(super) fn legend_rows(
    opts: &FigureOptions,
    entries: Vec<LegendRow>,
    max_rows: usize,
) -> Vec<LegendRow> {
    let mut rows = Vec::new();
    if !opts.legend_title.is_empty() {
        rows.push(LegendRow::Title(opts.legend_title.clone()));
    }
    let room = max_rows
        .saturating_sub(rows.len() + opts.legend_notes.len())
        .max(2);
    let n = entries.len();
    if n > room {
        rows.extend(entries.into_iter().take(room - 1));
        rows.push(LegendRow::Note(format!("… and {} more", n - (room - 1))));
    } else {
        rows.extend(entries);
    }
    rows.extend(opts.legend_notes.iter().cloned().map(LegendRow::Note));
    rows
}

/// Size of a legend box in output pixels.
pub(super) fn legend_size(rows: &[LegendRow]) -> (f64, f64) {
    let content = rows
        .iter()
        .map(|r| match r {
            LegendRow::Title(t) | LegendRow::Note(t) => text_w(t, LEGEND_EM),
            LegendRow::Entry { name, .. } => LEGEND_SAMPLE + LEGEND_GAP + text_w(name, LEGEND_EM),
        })
        .fold(0.0, f64::max);
    (
        2.0 * LEGEND_PAD + content + 2.0,
        2.0 * LEGEND_VPAD + LEGEND_ROW * rows.len() as f64,
    )
}

/// Draws the panel's legend in the corner of its axes covering the least data.
pub(super) fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &Prepared,
    sc: Scale,
) -> Result<()> {
    if p.legend.is_empty() {
        return Ok(());
    }
    let px = |v: f64| sc.px(v);
    let (w, h) = legend_size(&p.legend);
    let (box_w, box_h) = (px(w), px(h));
    let (aw, ah) = area.dim_in_pixel();
    let (aw, ah) = (aw as i32, ah as i32);
    let inset = px(10.0);

    // Corner covering the least data: upper right, lower right, upper left, lower left.
    let to_px = |q: P| -> (f64, f64) {
        (
            (q.0 - p.x.lo) / (p.x.hi - p.x.lo) * aw as f64,
            (p.y.hi - q.1) / (p.y.hi - p.y.lo) * ah as f64,
        )
    };
    let corners = [
        (aw - inset - box_w, inset),
        (aw - inset - box_w, ah - inset - box_h),
        (inset, inset),
        (inset, ah - inset - box_h),
    ];
    let mut samples: Vec<(f64, f64)> = Vec::new();
    for sr in &p.series {
        for line in &sr.lines {
            for w in line.windows(2) {
                let (a, b) = (to_px(w[0]), to_px(w[1]));
                let len = (b.0 - a.0).hypot(b.1 - a.1);
                let n = ((len / (4.0 * sc.s)).ceil() as usize).clamp(1, 64);
                for i in 0..n {
                    let t = i as f64 / n as f64;
                    samples.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
                }
            }
            if let Some(&last) = line.last() {
                samples.push(to_px(last));
            }
        }
        samples.extend(sr.markers.iter().map(|&m| to_px(m)));
    }
    for (_, polys) in &p.bands {
        samples.extend(polys.iter().flatten().map(|&q| to_px(q)));
    }
    let margin = px(4.0) as f64;
    let origin = corners
        .iter()
        .copied()
        .min_by_key(|&(cx, cy)| {
            samples
                .iter()
                .filter(|(x, y)| {
                    *x >= cx as f64 - margin
                        && *x <= (cx + box_w) as f64 + margin
                        && *y >= cy as f64 - margin
                        && *y <= (cy + box_h) as f64 + margin
                })
                .count()
        })
        .unwrap_or(corners[0]);
    draw_legend_box(area, &p.legend, origin, (box_w, box_h), sc)
}

/// Draws a framed legend with its top left corner at `(bx, by)` (device pixels).
pub(super) fn draw_legend_box<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[LegendRow],
    (bx, by): (i32, i32),
    (box_w, box_h): (i32, i32),
    sc: Scale,
) -> Result<()> {
    let px = |v: f64| sc.px(v);
    let corners = [(bx, by), (bx + box_w, by + box_h)];
    area.draw(&Rectangle::new(corners, WHITE.mix(0.92).filled()))
        .map_err(backend_err)?;
    area.draw(&Rectangle::new(
        corners,
        LEGEND_BORDER.stroke_width(sc.stroke(1.0)),
    ))
    .map_err(backend_err)?;
    let font = |color: &RGBColor| {
        sc.font(LEGEND_EM)
            .color(color)
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    let (pad, sample, gap, row) = (
        px(LEGEND_PAD),
        px(LEGEND_SAMPLE),
        px(LEGEND_GAP),
        px(LEGEND_ROW),
    );
    for (i, r) in rows.iter().enumerate() {
        let cy = by + px(LEGEND_VPAD) + row * i as i32 + row / 2;
        let x0 = bx + pad;
        match r {
            LegendRow::Title(t) => {
                area.draw(&Text::new(t.as_str(), (x0, cy), font(&BLACK)))
                    .map_err(backend_err)?;
            }
            LegendRow::Note(t) => {
                area.draw(&Text::new(t.as_str(), (x0, cy), font(&NOTE)))
                    .map_err(backend_err)?;
            }
            LegendRow::Entry {
                name,
                color,
                markers,
                band,
            } => {
                if *band {
                    area.draw(&Rectangle::new(
                        [(x0, cy - px(6.0)), (x0 + sample, cy + px(6.0))],
                        color.mix(0.2).filled(),
                    ))
                    .map_err(backend_err)?;
                }
                area.draw(&PathElement::new(
                    vec![(x0, cy), (x0 + sample, cy)],
                    color.stroke_width(sc.stroke(2.0)),
                ))
                .map_err(backend_err)?;
                if *markers {
                    area.draw(&Circle::new((x0 + sample / 2, cy), px(3.5), color.filled()))
                        .map_err(backend_err)?;
                }
                area.draw(&Text::new(
                    name.as_str(),
                    (x0 + sample + gap, cy),
                    font(&BLACK),
                ))
                .map_err(backend_err)?;
            }
        }
    }
    Ok(())
}
