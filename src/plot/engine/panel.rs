//! A row of line-plot panels ([`LineFigure`]): figure size, where the legend
//! goes (inside each panel or one column right of the panels), and drawing
//! one panel's axes, grid, bands, lines and markers with plotters.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{ticks_fit_width, TickedCoord};
use super::legend::{
    draw_legend, draw_legend_box, legend_rows, legend_size, INSIDE_LEGEND_ROWS, LEGEND_ROW,
    LEGEND_VPAD, RIGHT_LEGEND_TOP,
};
use super::legend_row::LegendRow;
use super::prepare::{color_map, prepare, Prepared};
use super::render::{backend_err, prepare_output, write_figure, Figure};
use super::style::{Scale, GRID, GRID_MINOR, LABEL_EM, TICK_EM, TITLE_EM};
use super::types::{FigureOptions, LegendPlacement, LinePlot};

/// Figure height in output pixels.
const HEIGHT: u32 = 500;

/// Width of one panel when the legend is right of the panels.
const PANEL_W: u32 = 600;

/// Figure width of `panels` side by side (legend inside the axes).
fn figure_size(panels: usize) -> (u32, u32) {
    if panels <= 1 {
        (700, HEIGHT)
    } else {
        (600 * panels as u32, HEIGHT)
    }
}

/// Draws `plots` side by side into `out` with the default options.
pub(super) fn render(plots: &[LinePlot], out: &Path) -> Result<()> {
    render_with(plots, &FigureOptions::default(), out)
}

/// Draws `plots` side by side into `out` (PNG or SVG by its extension).
pub(super) fn render_with(plots: &[LinePlot], opts: &FigureOptions, out: &Path) -> Result<()> {
    let format = prepare_output(out)?;
    let figure = LineFigure::new(plots, opts);
    write_figure(&figure, format, out)
}

/// A row of line-plot panels, with a legend in each panel or one legend
/// right of them.
struct LineFigure<'a> {
    plots: &'a [LinePlot],
    prepared: Vec<Prepared>,
    /// Rows of the legend right of the panels, and the width of the panels.
    right_legend: Option<(Vec<LegendRow>, u32)>,
    size: (u32, u32),
}

impl<'a> LineFigure<'a> {
    fn new(plots: &'a [LinePlot], opts: &FigureOptions) -> Self {
        let colors = color_map(plots, &opts.color_groups);
        let mut prepared: Vec<Prepared> = plots.iter().map(|p| prepare(p, &colors, opts)).collect();
        let n = plots.len().max(1);
        if opts.legend == LegendPlacement::Inside {
            for p in &mut prepared {
                if !p.legend.is_empty() {
                    let entries = std::mem::take(&mut p.legend);
                    p.legend = legend_rows(opts, entries, INSIDE_LEGEND_ROWS);
                }
            }
            return Self {
                plots,
                prepared,
                right_legend: None,
                size: figure_size(n),
            };
        }
        // One legend for the figure: the union of the panels' entries.
        let mut entries: Vec<LegendRow> = Vec::new();
        for p in &mut prepared {
            for row in p.legend.drain(..) {
                let LegendRow::Entry {
                    name,
                    markers,
                    band,
                    ..
                } = &row
                else {
                    continue;
                };
                let existing = entries.iter_mut().find_map(|e| match e {
                    LegendRow::Entry {
                        name: n,
                        markers,
                        band,
                        ..
                    } if n == name => Some((markers, band)),
                    _ => None,
                });
                match existing {
                    Some((m, b)) => {
                        *m |= *markers;
                        *b |= *band;
                    }
                    None => entries.push(row),
                }
            }
        }
        let panels_w = PANEL_W * n as u32;
        if entries.is_empty() && opts.legend_title.is_empty() && opts.legend_notes.is_empty() {
            return Self {
                plots,
                prepared,
                right_legend: None,
                size: (panels_w, HEIGHT),
            };
        }
        let max_rows =
            ((HEIGHT as f64 - RIGHT_LEGEND_TOP - 10.0 - 2.0 * LEGEND_VPAD) / LEGEND_ROW) as usize;
        let rows = legend_rows(opts, entries, max_rows);
        let (lw, lh) = legend_size(&rows);
        let w = panels_w + (lw + 4.0 + 16.0).ceil() as u32;
        let h = HEIGHT.max((RIGHT_LEGEND_TOP + lh + 10.0).ceil() as u32);
        Self {
            plots,
            prepared,
            right_legend: Some((rows, panels_w)),
            size: (w, h),
        }
    }
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, sc: Scale) -> Result<()> {
        root.fill(&WHITE).map_err(backend_err)?;
        let panels_area = match &self.right_legend {
            Some((rows, panels_w)) => {
                let (left, right) = root.split_horizontally(sc.px(*panels_w as f64));
                let (w, h) = legend_size(rows);
                draw_legend_box(
                    &right,
                    rows,
                    (sc.px(4.0), sc.px(RIGHT_LEGEND_TOP)),
                    (sc.px(w), sc.px(h)),
                    sc,
                )?;
                left
            }
            None => root.clone(),
        };
        let inside = self.right_legend.is_none();
        let areas = panels_area.split_evenly((1, self.plots.len().max(1)));
        for ((area, plot), prep) in areas.iter().zip(self.plots).zip(&self.prepared) {
            draw_panel(area, plot, prep, sc, inside)
                .with_context(|| format!("drawing panel {:?}", plot.title))?;
        }
        Ok(())
    }
}

fn text_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
) -> Result<i32> {
    let (w, _) = area.estimate_text_size(text, style).map_err(backend_err)?;
    Ok(w as i32)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    plot: &LinePlot,
    p: &Prepared,
    sc: Scale,
    legend_inside: bool,
) -> Result<()> {
    let px = |v: f64| sc.px(v);

    // Label areas: tick mark, gap, tick labels, gap, axis label.
    let tick_measure = sc.measure(TICK_EM);
    let mut tick_w = 0;
    for (_, label) in &p.y.ticks {
        tick_w = tick_w.max(text_width(area, label, &tick_measure)?);
    }
    let (panel_w, _) = area.dim_in_pixel();
    let y_area = (tick_w + px(5.0 + 5.0 + 10.0 + LABEL_EM * 1.2)).min(panel_w as i32 * 2 / 5);
    // x tick labels that would overlap (long category names on a narrow
    // panel) go on two alternating rows, each drawn below its tick
    let plot_w = panel_w as i32 - y_area - px(8.0 + 24.0);
    let stagger = !ticks_fit_width(&p.x.ticks, p.x.hi - p.x.lo, f64::from(plot_w) / sc.s);
    let rows = if stagger { 2.0 } else { 1.0 };
    let x_area = px(5.0 + 5.0 + TICK_EM * 1.2 * rows + 10.0 + LABEL_EM * 1.2);

    let mut builder = ChartBuilder::on(area);
    builder
        .margin_top(px(8.0))
        .margin_bottom(px(6.0))
        .margin_left(px(8.0))
        .margin_right(px(24.0))
        .x_label_area_size(x_area)
        .y_label_area_size(y_area);
    if !plot.title.is_empty() {
        builder.caption(&plot.title, sc.font(TITLE_EM));
    }
    let mut chart = builder
        .build_cartesian_2d(TickedCoord::new(&p.x), TickedCoord::new(&p.y))
        .map_err(backend_err)?;

    let label_of = |ticks: &[(f64, String)], v: f64| -> String {
        ticks
            .iter()
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .map(|t| t.1.clone())
            .unwrap_or_default()
    };
    let x_fmt = |v: &f64| {
        if stagger {
            String::new() // drawn below, after the mesh
        } else {
            label_of(&p.x.ticks, *v)
        }
    };
    let y_fmt = |v: &f64| label_of(&p.y.ticks, *v);
    let thin = sc.stroke(1.0);
    chart
        .configure_mesh()
        .x_desc(plot.x_label.as_str())
        .y_desc(plot.y_label.as_str())
        .axis_desc_style(sc.font(LABEL_EM))
        .label_style(sc.font(TICK_EM))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .bold_line_style(GRID.stroke_width(thin))
        .light_line_style(GRID_MINOR.stroke_width(thin))
        .axis_style(BLACK.stroke_width(thin))
        .set_all_tick_mark_size(px(5.0))
        .draw()
        .map_err(backend_err)?;

    if stagger {
        let base = area.get_base_pixel();
        for (i, (x, label)) in p.x.ticks.iter().enumerate() {
            let (bx, by) = chart.backend_coord(&(*x, p.y.lo));
            let row = (i % 2) as f64;
            let y = by - base.1 + px(5.0 + 5.0 + TICK_EM * 1.2 * row);
            area.draw(&Text::new(
                label.clone(),
                (bx - base.0, y),
                sc.font(TICK_EM)
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(backend_err)?;
        }
    }

    // Bands, then lines, then markers.
    for (color, polys) in &p.bands {
        for poly in polys {
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly.clone(),
                    color.mix(0.2).filled(),
                )))
                .map_err(backend_err)?;
        }
    }
    let series_w = sc.stroke(2.0);
    for sr in &p.series {
        let style = sr.color.stroke_width(series_w);
        chart
            .draw_series(sr.lines.iter().map(|l| PathElement::new(l.clone(), style)))
            .map_err(backend_err)?;
        if sr.show_markers {
            chart
                .draw_series(
                    sr.markers
                        .iter()
                        .map(|&m| Circle::new(m, px(3.5), sr.color.filled())),
                )
                .map_err(backend_err)?;
        }
    }

    // Close the frame: top and right edges (the axes are the other two).
    let plot_area = chart.plotting_area().strip_coord_spec();
    let (pw, ph) = plot_area.dim_in_pixel();
    let (pw, ph) = (pw as i32, ph as i32);
    let edge = thin as i32 / 2;
    plot_area
        .draw(&PathElement::new(
            vec![(0, edge), (pw - 1 - edge, edge), (pw - 1 - edge, ph - 1)],
            BLACK.stroke_width(thin),
        ))
        .map_err(backend_err)?;

    if !p.has_data {
        plot_area
            .draw(&Text::new(
                "no data",
                (pw / 2, ph / 2),
                sc.font(LABEL_EM)
                    .color(&RGBColor(130, 130, 130))
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            ))
            .map_err(backend_err)?;
    }

    if legend_inside {
        draw_legend(&plot_area, p, sc)?;
    }
    Ok(())
}
