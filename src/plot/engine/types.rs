//! The data a line figure is made of: [`Series`] (a line), [`Band`] (a
//! translucent range behind a line), [`LinePlot`] (one set of axes) and the
//! figure-wide [`FigureOptions`] ([`XScale`], [`LegendPlacement`], colour
//! groups). Plain data, independent of plotters.

use std::collections::HashMap;

/// One line of a plot: `(x, y)` points in drawing order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.into(),
            points,
        }
    }
}

/// Optional band (e.g. min/max over seeds) drawn translucently behind a series with the same name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Band {
    pub name: String,
    /// `(x, lo, hi)`
    pub points: Vec<(f64, f64, f64)>,
}

/// A single set of axes with any number of series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    /// Log-scale y axis; ignored (linear) unless every y value is positive.
    pub log_y: bool,
    /// Fixed y range `(lo, hi)`, used as given; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
}

/// How the x axis of a figure's panels maps data values.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum XScale {
    /// Linear axis fitted to the data.
    #[default]
    Linear,
    /// log10 axis; linear unless every x value is positive.
    Log,
    /// Evenly spaced categories labelled with these names; a point's x is the
    /// index of its category (0, 1, ...). Many categories get every k-th label.
    Categorical(Vec<String>),
}

/// Where a figure's legend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegendPlacement {
    /// One legend per panel, in the corner of the axes covering the least data.
    #[default]
    Inside,
    /// One legend for the whole figure, in a column right of the panels (for
    /// many or long entries); the figure is widened to make room.
    Right,
}

/// Figure-wide options for [`panels_with`]. The default gives the same
/// figure as [`panels`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FigureOptions {
    /// The x axis of every panel.
    pub x_scale: XScale,
    /// Labelled x ticks at these data values instead of the automatic ones
    /// (e.g. the values of a sweep); ignored when empty, for categorical
    /// axes, and when the labels would collide.
    pub x_ticks: Vec<(f64, String)>,
    pub legend: LegendPlacement,
    /// Heading above the legend entries (empty: none).
    pub legend_title: String,
    /// Lines of text below the legend entries (e.g. what a band means).
    pub legend_notes: Vec<String>,
    /// Series (and band) name -> colour group. The series of one group share
    /// a colour and a single legend entry named after the group; series not
    /// listed are their own group.
    pub color_groups: HashMap<String, String>,
}
