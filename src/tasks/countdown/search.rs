//! Symbolic search strategies that produce exploration traces (the
//! Stream-of-Search "classic" reasoners used by the paper for its data).
//!
//! A node is a list of remaining numbers; its children are all moves on all
//! pairs (list order and move order: [`super::rules`]). Two algorithms, each with
//! either heuristic:
//!
//! - **DFS** (`dfs-sum`, `dfs-mult`): expand a node, drop children whose
//!   heuristic exceeds the target (SoS `threshold=target`), stably sort the
//!   rest by heuristic and visit them in that order, recursing into
//!   non-leaves; stop at the first leaf equal to the target.
//! - **BFS/beam** (`bfsK-sum`, `bfsK-mult`, K = beam width): a priority queue
//!   of open nodes ordered by heuristic; each round pops the K best, and for
//!   each popped node generates all children, keeps the K best (stable sort),
//!   shuffles them (the trace's only randomness), visits them (stop at a
//!   goal leaf) and pushes them into the queue. As in SoS, leaves are
//!   pushed too and nodes not popped stay queued across rounds. The queue
//!   is a copy of Python's `heapq` on entries compared by heuristic alone,
//!   so ties pop in the reference's order (neither insertion order nor
//!   node index: see `PyHeap`).
//!
//! Heuristics: `sum` = mean over the numbers of `|n - target|` (for one
//! number `|n - target|`); `mult` = sum over the numbers of the distance to
//! the nearest factor `f >= 2` of the target (`|n - target|` when the target
//! has no such factor).
//!
//! SoS's "random" mode draws, per problem, one of {dfs, bfs} x {sum,
//! mult}, with the beam width uniform in 1..=5 ([`StrategyMix::paper`]).
//! The learning-and-forgetting paper's own data instead runs both
//! `dfs-sum` and `bfs5-mult` on every problem ([`PAPER_SEARCHES`]).
//!
//! A [`Trace`] records every expansion and visit. Its nodes explored =
//! visits + 1 (SoS `simple_rating`); from it come the successful path (the
//! goal leaf's moves) and the failed paths (the moves of every visited leaf
//! whose value is not the target, i.e. full-length paths).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::rules::{remove_pair_into, Move, Value, MAX_MOVES, MAX_NUMBERS};

/// A search heuristic (lower = more promising).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Heuristic {
    /// Mean `|n - target|`.
    Sum,
    /// Sum of distances to the nearest factor of the target.
    Mult,
}

impl Heuristic {
    /// `sum` or `mult`.
    pub fn name(self) -> &'static str {
        match self {
            Heuristic::Sum => "sum",
            Heuristic::Mult => "mult",
        }
    }
}

/// A search algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Heuristic-ordered depth-first search with pruning `h > target`.
    Dfs,
    /// SoS "bfs": beam-limited best-first search with this beam width (>= 1).
    Bfs(usize),
}

/// One concrete strategy: an algorithm with a heuristic, written
/// `dfs-sum`, `dfs-mult`, `bfs3-sum`, `bfs5-mult`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Strategy {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The heuristic.
    pub heuristic: Heuristic,
}

impl Strategy {
    /// DFS with `h`.
    pub fn dfs(h: Heuristic) -> Strategy {
        Strategy {
            algorithm: Algorithm::Dfs,
            heuristic: h,
        }
    }

    /// Beam search of width `beam` with `h`.
    pub fn bfs(beam: usize, h: Heuristic) -> Strategy {
        Strategy {
            algorithm: Algorithm::Bfs(beam),
            heuristic: h,
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.algorithm {
            Algorithm::Dfs => write!(f, "dfs-{}", self.heuristic.name()),
            Algorithm::Bfs(k) => write!(f, "bfs{k}-{}", self.heuristic.name()),
        }
    }
}

/// An entry of a strategy mix: a concrete strategy, or beam search whose
/// width is drawn per problem. Written `dfs-sum`, `bfs-mult` (width drawn)
/// or `bfs3-sum` (fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StrategySpec {
    /// Always this strategy.
    Fixed(Strategy),
    /// Beam search with this heuristic and a width drawn from the mix's list.
    BfsAnyWidth(Heuristic),
}

impl fmt::Display for StrategySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrategySpec::Fixed(s) => write!(f, "{s}"),
            StrategySpec::BfsAnyWidth(h) => write!(f, "bfs-{}", h.name()),
        }
    }
}

impl FromStr for StrategySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<StrategySpec, String> {
        let bad = || {
            format!("unknown strategy {s:?} (expected dfs-sum, dfs-mult, bfs-sum, bfs-mult, or bfsK-sum / bfsK-mult with a beam width K >= 1)")
        };
        let (alg, h) = s.split_once('-').ok_or_else(bad)?;
        let h = match h {
            "sum" => Heuristic::Sum,
            "mult" => Heuristic::Mult,
            _ => return Err(bad()),
        };
        match alg {
            "dfs" => Ok(StrategySpec::Fixed(Strategy::dfs(h))),
            "bfs" => Ok(StrategySpec::BfsAnyWidth(h)),
            _ => {
                let k: usize = alg
                    .strip_prefix("bfs")
                    .and_then(|k| k.parse().ok())
                    .ok_or_else(bad)?;
                if k == 0 {
                    return Err(bad());
                }
                Ok(StrategySpec::Fixed(Strategy::bfs(k, h)))
            }
        }
    }
}

impl TryFrom<String> for StrategySpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<StrategySpec> for String {
    fn from(s: StrategySpec) -> String {
        s.to_string()
    }
}

/// A distribution over strategies: uniform over `specs`, beam widths
/// uniform over `beam_widths` for `bfs-*` entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrategyMix {
    /// Entries, drawn uniformly.
    pub specs: Vec<StrategySpec>,
    /// Widths for `bfs-*` entries, drawn uniformly.
    pub beam_widths: Vec<usize>,
}

/// The searches the learning-and-forgetting paper runs on every Countdown
/// problem for its data (`classic_gen.sh`: `generate_search.py --search
/// dfs` and `--search bfs`, whose paths `bfs_dfs.yaml` trains on
/// together): DFS with the sum heuristic, then beam search of width 5 with
/// the mult heuristic.
pub const PAPER_SEARCHES: [Strategy; 2] = [
    Strategy {
        algorithm: Algorithm::Dfs,
        heuristic: Heuristic::Sum,
    },
    Strategy {
        algorithm: Algorithm::Bfs(5),
        heuristic: Heuristic::Mult,
    },
];

impl StrategyMix {
    /// The paper's "random" mode: {dfs, bfs} x {sum, mult}, beam 1..=5.
    pub fn paper() -> StrategyMix {
        StrategyMix {
            specs: ["dfs-sum", "dfs-mult", "bfs-sum", "bfs-mult"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
            beam_widths: vec![1, 2, 3, 4, 5],
        }
    }

    /// Draws one concrete strategy.
    pub fn sample<R: Rng>(&self, rng: &mut R) -> Strategy {
        match self.specs[rng.gen_range(0..self.specs.len())] {
            StrategySpec::Fixed(s) => s,
            StrategySpec::BfsAnyWidth(h) => Strategy::bfs(
                self.beam_widths[rng.gen_range(0..self.beam_widths.len())],
                h,
            ),
        }
    }

    /// Every concrete strategy the mix can draw, sorted.
    pub fn concrete(&self) -> Vec<Strategy> {
        let mut out = Vec::new();
        for spec in &self.specs {
            match *spec {
                StrategySpec::Fixed(s) => out.push(s),
                StrategySpec::BfsAnyWidth(h) => {
                    out.extend(self.beam_widths.iter().map(|&k| Strategy::bfs(k, h)))
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Index of a node in a [`Trace`].
pub type NodeId = u32;

/// One search node: the remaining numbers and the move that made them.
#[derive(Clone, Copy, Debug)]
pub struct Node<V> {
    /// Parent node (`None` for the root).
    pub parent: Option<NodeId>,
    /// The move from the parent (meaningless for the root).
    pub mv: Move<V>,
    nums: [V; MAX_NUMBERS],
    len: u8,
    /// Heuristic value of this node.
    pub h: f64,
}

impl<V: Value> Node<V> {
    /// The remaining numbers, in list order.
    pub fn numbers(&self) -> &[V] {
        &self.nums[..self.len as usize]
    }
}

/// One event of the exploration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The node's children were generated ("Current State").
    Expand(NodeId),
    /// The node was visited ("Exploring Operation").
    Visit(NodeId),
    /// The visited leaf equals the target ("Goal Reached"); the search stops.
    Goal(NodeId),
    /// The visited leaf differs from the target ("No Solution").
    DeadEnd(NodeId),
}

/// The record of one search run.
#[derive(Clone, Debug)]
pub struct Trace<V> {
    /// The strategy that ran.
    pub strategy: Strategy,
    /// The target.
    pub target: V,
    /// All generated nodes; node 0 is the root.
    pub nodes: Vec<Node<V>>,
    /// Expansions and visits in order.
    pub events: Vec<Event>,
    /// The goal leaf, if the search solved the puzzle.
    pub goal: Option<NodeId>,
    /// Visited leaves whose value is not the target, in visit order.
    pub dead_ends: Vec<NodeId>,
}

impl<V: Value> Trace<V> {
    /// Whether the search reached the target.
    pub fn solved(&self) -> bool {
        self.goal.is_some()
    }

    /// Nodes explored: visits + 1 for the root (SoS `simple_rating`).
    pub fn nodes_explored(&self) -> usize {
        1 + self
            .events
            .iter()
            .filter(|e| matches!(e, Event::Visit(_)))
            .count()
    }

    /// SoS rating: `1 - nodes_explored / max_nodes` when solved (clipped at
    /// 0), else 0; `max_nodes` is the size of the full move tree counted with
    /// four moves per pair (1152 for four numbers).
    pub fn rating(&self) -> f64 {
        if !self.solved() {
            return 0.0;
        }
        let n = self.nodes[0].numbers().len();
        let max: f64 = (2..=n).map(|k| (k * (k - 1) / 2 * 4) as f64).product();
        (1.0 - self.nodes_explored() as f64 / max).max(0.0)
    }

    /// The moves from the root to `node`.
    pub fn moves_to(&self, node: NodeId) -> Vec<Move<V>> {
        let mut out = Vec::new();
        let mut cur = node;
        while let Some(p) = self.nodes[cur as usize].parent {
            out.push(self.nodes[cur as usize].mv);
            cur = p;
        }
        out.reverse();
        out
    }

    /// The successful path, if any.
    pub fn success_path(&self) -> Option<Vec<Move<V>>> {
        self.goal.map(|g| self.moves_to(g))
    }

    /// Every failed leaf path, in visit order (may repeat as move lists
    /// when different orders reach the same leaf values).
    pub fn failed_paths(&self) -> Vec<Vec<Move<V>>> {
        self.dead_ends.iter().map(|&d| self.moves_to(d)).collect()
    }

    /// The trace in (approximately) the Stream-of-Search text style:
    /// `Current State: 27:[25, 5, 5, 33], Operations: []`,
    /// `Exploring Operation: 25+5=30, Resulting Numbers: [5, 33, 30]`,
    /// `27,27 equal: Goal Reached`, `30,27 unequal: No Solution`.
    pub fn to_sos_text(&self) -> String {
        use std::fmt::Write as _;
        let list = |n: &Node<V>| {
            n.numbers()
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let ops = |id: NodeId| {
            self.moves_to(id)
                .iter()
                .map(|m| format!("'{}{}{}={}'", m.lhs, m.op, m.rhs, m.result))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut s = String::new();
        for e in &self.events {
            let _ = match *e {
                Event::Expand(id) => {
                    let n = &self.nodes[id as usize];
                    writeln!(
                        s,
                        "Current State: {}:[{}], Operations: [{}]",
                        self.target,
                        list(n),
                        ops(id)
                    )
                }
                Event::Visit(id) => {
                    let n = &self.nodes[id as usize];
                    let m = n.mv;
                    writeln!(
                        s,
                        "Exploring Operation: {}{}{}={}, Resulting Numbers: [{}]",
                        m.lhs,
                        m.op,
                        m.rhs,
                        m.result,
                        list(n)
                    )
                }
                Event::Goal(id) => writeln!(
                    s,
                    "{},{} equal: Goal Reached",
                    self.nodes[id as usize].nums[0], self.target
                ),
                Event::DeadEnd(id) => {
                    writeln!(
                        s,
                        "{},{} unequal: No Solution",
                        self.nodes[id as usize].nums[0], self.target
                    )
                }
            };
        }
        if self.goal.is_none() {
            s.push_str("No solution found.\n");
        }
        s
    }
}

struct Ctx<'a, V: Value, R: Rng> {
    trace: Trace<V>,
    heuristic: Heuristic,
    factors: Vec<f64>,
    target_f: f64,
    rng: &'a mut R,
}

impl<V: Value, R: Rng> Ctx<'_, V, R> {
    fn h(&self, nums: &[V]) -> f64 {
        match self.heuristic {
            Heuristic::Sum => {
                let s: f64 = nums
                    .iter()
                    .map(|n| (n.to_f64() - self.target_f).abs())
                    .sum();
                if nums.len() == 1 {
                    s
                } else {
                    s / nums.len() as f64
                }
            }
            Heuristic::Mult => {
                if self.factors.is_empty() {
                    return nums
                        .iter()
                        .map(|n| (n.to_f64() - self.target_f).abs())
                        .sum();
                }
                nums.iter()
                    .map(|n| {
                        let x = n.to_f64();
                        self.factors
                            .iter()
                            .map(|f| (x - f).abs())
                            .fold(f64::INFINITY, f64::min)
                    })
                    .sum()
            }
        }
    }

    /// All children of `id`, in list order (not yet in the arena).
    fn children(&self, id: NodeId, out: &mut Vec<Node<V>>) {
        out.clear();
        let node = self.trace.nodes[id as usize];
        let nums = node.numbers();
        let n = nums.len();
        let mut mv = [Move::default(); MAX_MOVES];
        for i in 0..n {
            for j in i + 1..n {
                let k = V::moves(nums[i], nums[j], &mut mv);
                for m in &mv[..k] {
                    let mut child = Node {
                        parent: Some(id),
                        mv: *m,
                        nums: [V::default(); MAX_NUMBERS],
                        len: 0,
                        h: 0.0,
                    };
                    let c = remove_pair_into(nums, i, j, &mut child.nums);
                    child.nums[c] = m.result;
                    child.len = (c + 1) as u8;
                    child.h = self.h(child.numbers());
                    out.push(child);
                }
            }
        }
    }

    /// Visits an arena node; returns true at the goal.
    fn visit(&mut self, id: NodeId) -> Visit {
        self.trace.events.push(Event::Visit(id));
        let node = &self.trace.nodes[id as usize];
        if node.len == 1 {
            if node.nums[0] == self.trace.target {
                self.trace.events.push(Event::Goal(id));
                self.trace.goal = Some(id);
                return Visit::Goal;
            }
            self.trace.events.push(Event::DeadEnd(id));
            self.trace.dead_ends.push(id);
            return Visit::Leaf;
        }
        Visit::Inner
    }

    fn dfs(&mut self, id: NodeId, buf: &mut Vec<Vec<Node<V>>>, depth: usize) -> bool {
        self.trace.events.push(Event::Expand(id));
        if buf.len() <= depth {
            buf.push(Vec::new());
        }
        let mut kids = std::mem::take(&mut buf[depth]);
        self.children(id, &mut kids);
        let threshold = self.target_f;
        kids.retain(|c| c.h <= threshold);
        kids.sort_by(|a, b| a.h.partial_cmp(&b.h).unwrap_or(Ordering::Equal));
        let first = self.trace.nodes.len() as NodeId;
        self.trace.nodes.extend_from_slice(&kids);
        let count = kids.len() as NodeId;
        buf[depth] = kids;
        for c in first..first + count {
            match self.visit(c) {
                Visit::Goal => return true,
                Visit::Leaf => {}
                Visit::Inner => {
                    if self.dfs(c, buf, depth + 1) {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn bfs(&mut self, beam: usize) {
        let mut open = PyHeap::default();
        open.push(self.trace.nodes[0].h, 0);
        let mut kids = Vec::new();
        let mut current = Vec::with_capacity(beam);
        while !open.is_empty() {
            current.clear();
            for _ in 0..beam.min(open.len()) {
                current.push(open.pop().expect("non-empty").1);
            }
            for &id in &current {
                self.trace.events.push(Event::Expand(id));
                self.children(id, &mut kids);
                kids.sort_by(|a, b| a.h.partial_cmp(&b.h).unwrap_or(Ordering::Equal));
                kids.truncate(beam);
                kids.shuffle(self.rng);
                let first = self.trace.nodes.len() as NodeId;
                self.trace.nodes.extend_from_slice(&kids);
                let ids: Vec<NodeId> = (first..first + kids.len() as NodeId).collect();
                for &c in &ids {
                    if let Visit::Goal = self.visit(c) {
                        return;
                    }
                }
                // SoS re-sorts the kept children (stably, by h) before
                // pushing them.
                let mut sorted = ids;
                sorted.sort_by(|&a, &b| {
                    self.trace.nodes[a as usize]
                        .h
                        .partial_cmp(&self.trace.nodes[b as usize].h)
                        .unwrap_or(Ordering::Equal)
                });
                for c in sorted {
                    open.push(self.trace.nodes[c as usize].h, c);
                }
            }
        }
    }
}

enum Visit {
    Goal,
    Leaf,
    Inner,
}

/// The open queue of beam search: Python's `heapq` algorithm, step for
/// step, on `(h, node)` entries compared by `h` alone.
///
/// SoS pushes `(heuristic, CountdownNode)` tuples, and `CountdownNode.__lt__`
/// compares the heuristics, so two entries with equal `h` compare equal and
/// neither insertion order nor node index breaks the tie: which one pops
/// first is decided by where `heapq`'s sift-up/sift-down left them. A
/// Rust `BinaryHeap` (or an `(h, insertion counter)` key) pops ties in a
/// different order, which changes which nodes the beam expands; this copy
/// of `heapq.heappush` / `heapq.heappop` (CPython `Lib/heapq.py`,
/// `_siftdown` / `_siftup`) pops them in the reference's order.
#[derive(Default)]
pub(crate) struct PyHeap {
    items: Vec<(f64, NodeId)>,
}

impl PyHeap {
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `heapq.heappush`.
    pub(crate) fn push(&mut self, h: f64, id: NodeId) {
        self.items.push((h, id));
        let last = self.items.len() - 1;
        self.sift_down(0, last);
    }

    /// `heapq.heappop`.
    pub(crate) fn pop(&mut self) -> Option<(f64, NodeId)> {
        let last = self.items.pop()?;
        if self.items.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.items[0], last);
        self.sift_up(0);
        Some(top)
    }

    /// `heapq._siftdown`: move the item at `pos` up towards `start` while
    /// it is strictly smaller than its parent.
    fn sift_down(&mut self, start: usize, mut pos: usize) {
        let item = self.items[pos];
        while pos > start {
            let parent = (pos - 1) >> 1;
            if item.0 < self.items[parent].0 {
                self.items[pos] = self.items[parent];
                pos = parent;
                continue;
            }
            break;
        }
        self.items[pos] = item;
    }

    /// `heapq._siftup`: move the smaller child up until a leaf is reached
    /// (the right child on ties), then sift the item into place.
    // `!(a < b)` is heapq's own test (`not heap[childpos] < heap[rightpos]`).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn sift_up(&mut self, mut pos: usize) {
        let end = self.items.len();
        let start = pos;
        let item = self.items[pos];
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !(self.items[child].0 < self.items[right].0) {
                child = right;
            }
            self.items[pos] = self.items[child];
            pos = child;
            child = 2 * pos + 1;
        }
        self.items[pos] = item;
        self.sift_down(start, pos);
    }
}

/// Target factors `f >= 2` used by the `mult` heuristic (empty when the
/// target is not an integer >= 2).
fn factors<V: Value>(target: V) -> Vec<f64> {
    match target.to_ratio().to_integer() {
        Some(t) if t >= 2 => (2..=t).filter(|f| t % f == 0).map(|f| f as f64).collect(),
        _ => Vec::new(),
    }
}

/// Runs `strategy` on the puzzle and returns its trace. `rng` is used only
/// by beam search (shuffling the kept children).
///
/// # Panics
/// When there are fewer than 2 or more than [`MAX_NUMBERS`] numbers, or the
/// beam width is 0.
pub fn run<V: Value, R: Rng>(
    numbers: &[V],
    target: V,
    strategy: Strategy,
    rng: &mut R,
) -> Trace<V> {
    assert!(
        (2..=MAX_NUMBERS).contains(&numbers.len()),
        "search takes 2..={MAX_NUMBERS} numbers, got {}",
        numbers.len()
    );
    let mut root = Node {
        parent: None,
        mv: Move::default(),
        nums: [V::default(); MAX_NUMBERS],
        len: numbers.len() as u8,
        h: 0.0,
    };
    root.nums[..numbers.len()].copy_from_slice(numbers);
    let mut ctx = Ctx {
        trace: Trace {
            strategy,
            target,
            nodes: Vec::with_capacity(256),
            events: Vec::with_capacity(512),
            goal: None,
            dead_ends: Vec::new(),
        },
        heuristic: strategy.heuristic,
        factors: factors(target),
        target_f: target.to_f64(),
        rng,
    };
    root.h = ctx.h(root.numbers());
    ctx.trace.nodes.push(root);
    match strategy.algorithm {
        Algorithm::Dfs => {
            let mut buf = Vec::new();
            ctx.dfs(0, &mut buf, 0);
        }
        Algorithm::Bfs(k) => {
            assert!(k >= 1, "beam width must be >= 1");
            ctx.bfs(k);
        }
    }
    ctx.trace
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn strategy_names_round_trip() {
        for s in [
            "dfs-sum",
            "dfs-mult",
            "bfs-sum",
            "bfs-mult",
            "bfs3-sum",
            "bfs12-mult",
        ] {
            assert_eq!(s.parse::<StrategySpec>().unwrap().to_string(), s);
        }
        for s in ["dfs", "bfs0-sum", "beam-sum", "dfs-max", ""] {
            assert!(s.parse::<StrategySpec>().is_err(), "{s}");
        }
        assert_eq!(StrategyMix::paper().concrete().len(), 12);
    }

    /// Reference: CPython 3 `heapq` on `(h, node)` tuples whose nodes
    /// compare by `h` (SoS `CountdownNode.__lt__`):
    /// ```python
    /// heap = []
    /// seq = [(3,0),(1,1),(1,2),(2,3),(1,4),(3,5),(2,6),(1,7),(1,8),(2,9)]
    /// for h, i in seq[:6]: heapq.heappush(heap, (h, N(h, i)))
    /// out = [heapq.heappop(heap)[1].i for _ in range(3)]
    /// for h, i in seq[6:]: heapq.heappush(heap, (h, N(h, i)))
    /// while heap: out.append(heapq.heappop(heap)[1].i)
    /// # [1, 2, 4, 7, 8, 9, 3, 6, 0, 5]
    /// ```
    /// Insertion order would pop the h = 2 ties as 3, 6, 9.
    #[test]
    fn beam_queue_pops_ties_in_python_heapq_order() {
        let seq = [
            (3.0, 0),
            (1.0, 1),
            (1.0, 2),
            (2.0, 3),
            (1.0, 4),
            (3.0, 5),
            (2.0, 6),
            (1.0, 7),
            (1.0, 8),
            (2.0, 9),
        ];
        let mut heap = PyHeap::default();
        let mut out = Vec::new();
        for &(h, i) in &seq[..6] {
            heap.push(h, i);
        }
        assert_eq!(heap.len(), 6);
        for _ in 0..3 {
            out.push(heap.pop().unwrap().1);
        }
        for &(h, i) in &seq[6..] {
            heap.push(h, i);
        }
        while let Some((_, i)) = heap.pop() {
            out.push(i);
        }
        assert_eq!(out, [1, 2, 4, 7, 8, 9, 3, 6, 0, 5]);
        assert!(heap.is_empty());
    }

    #[test]
    fn dfs_finds_the_readme_example() {
        let mut rng = StdRng::seed_from_u64(0);
        let t = run(
            &[25i64, 5, 5, 33],
            27,
            Strategy::dfs(Heuristic::Sum),
            &mut rng,
        );
        assert!(t.solved());
        let p = t.success_path().unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p.last().unwrap().result, 27);
        assert!(t.nodes_explored() >= 4);
        assert!(t.to_sos_text().contains("Goal Reached"));
        for f in t.failed_paths() {
            assert_eq!(f.len(), 3);
            assert_ne!(f.last().unwrap().result, 27);
        }
    }

    #[test]
    fn beam_search_terminates_on_unsolvable() {
        let mut rng = StdRng::seed_from_u64(1);
        for k in 1..=5 {
            for h in [Heuristic::Sum, Heuristic::Mult] {
                let t = run(&[1i64, 1, 1, 1], 97, Strategy::bfs(k, h), &mut rng);
                assert!(!t.solved());
                assert!(!t.dead_ends.is_empty());
            }
        }
    }
}
