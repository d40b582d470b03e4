//! Clipping in plot space: polylines (Liang-Barsky per segment) and
//! polygons (Sutherland-Hodgman) against the axes' rectangle, so lines and
//! bands that leave a fixed y range stop at the frame.

pub(super) type P = (f64, f64);

#[derive(Clone, Copy)]
pub(super) struct Rect {
    pub(super) x0: f64,
    pub(super) x1: f64,
    pub(super) y0: f64,
    pub(super) y1: f64,
}

impl Rect {
    pub(super) fn contains(&self, p: P) -> bool {
        p.0 >= self.x0 && p.0 <= self.x1 && p.1 >= self.y0 && p.1 <= self.y1
    }
}

/// Liang-Barsky; returns the visible part of segment `a`-`b`, with unclipped
/// endpoints returned bit-for-bit.
fn clip_segment(a: P, b: P, r: &Rect) -> Option<(P, P)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - r.x0),
        (dx, r.x1 - a.0),
        (-dy, a.1 - r.y0),
        (dy, r.y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                if t > t1 {
                    return None;
                }
                t0 = t0.max(t);
            } else {
                if t < t0 {
                    return None;
                }
                t1 = t1.min(t);
            }
        }
    }
    let at = |t: f64| (a.0 + t * dx, a.1 + t * dy);
    let start = if t0 == 0.0 { a } else { at(t0) };
    let end = if t1 == 1.0 { b } else { at(t1) };
    Some((start, end))
}

pub(super) fn clip_polyline(pts: &[P], r: &Rect) -> Vec<Vec<P>> {
    let mut out = Vec::new();
    let mut cur: Vec<P> = Vec::new();
    for w in pts.windows(2) {
        match clip_segment(w[0], w[1], r) {
            Some((a, b)) => {
                if cur.last() != Some(&a) {
                    if cur.len() >= 2 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur = vec![a];
                }
                cur.push(b);
            }
            None => {
                if cur.len() >= 2 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() >= 2 {
        out.push(cur);
    }
    out
}

/// Sutherland-Hodgman against the four sides of `r`.
pub(super) fn clip_polygon(poly: &[P], r: &Rect) -> Vec<P> {
    type Side = (fn(P, &Rect) -> bool, fn(P, P, &Rect) -> P);
    fn lerp_x(a: P, b: P, x: f64) -> P {
        let t = (x - a.0) / (b.0 - a.0);
        (x, a.1 + t * (b.1 - a.1))
    }
    fn lerp_y(a: P, b: P, y: f64) -> P {
        let t = (y - a.1) / (b.1 - a.1);
        (a.0 + t * (b.0 - a.0), y)
    }
    let sides: [Side; 4] = [
        (|p, r| p.0 >= r.x0, |a, b, r| lerp_x(a, b, r.x0)),
        (|p, r| p.0 <= r.x1, |a, b, r| lerp_x(a, b, r.x1)),
        (|p, r| p.1 >= r.y0, |a, b, r| lerp_y(a, b, r.y0)),
        (|p, r| p.1 <= r.y1, |a, b, r| lerp_y(a, b, r.y1)),
    ];
    let mut cur = poly.to_vec();
    for (inside, cross) in sides {
        if cur.is_empty() {
            break;
        }
        let input = std::mem::take(&mut cur);
        let mut prev = *input.last().unwrap();
        for &p in &input {
            match (inside(prev, r), inside(p, r)) {
                (true, true) => cur.push(p),
                (true, false) => cur.push(cross(prev, p, r)),
                (false, true) => {
                    cur.push(cross(prev, p, r));
                    cur.push(p);
                }
                (false, false) => {}
            }
            prev = p;
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping() {
        let r = Rect {
            x0: 0.0,
            x1: 1.0,
            y0: 0.0,
            y1: 1.0,
        };
        let lines = clip_polyline(&[(0.0, 0.5), (0.5, 2.0), (1.0, 0.5)], &r);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().flatten().all(|&p| r.contains(p)));
        let poly = clip_polygon(&[(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)], &r);
        assert_eq!(poly.len(), 4);
    }
}
