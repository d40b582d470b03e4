//! One row of a legend: what the layout (`prepare`) produces and the
//! legend drawing (`legend`) consumes.

use plotters::style::RGBColor;

/// One line of a legend.
#[derive(Clone)]
pub(super) enum LegendRow {
    Title(String),
    Entry {
        name: String,
        color: RGBColor,
        markers: bool,
        band: bool,
    },
    Note(String),
}
