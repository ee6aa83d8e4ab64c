//! Start order of the listed units. `After=`/`Before=` between listed units are hard constraints (a cycle is
//! an error naming it); `Requires=`/`Wants=`/`BindsTo=`/`Requisite=`/`Upholds=` without an ordering only
//! break ties (systemd would start such units in parallel; wayback starts one at a time, so it starts the
//! dependency first when the hard constraints allow). Otherwise the order given by the caller is kept.

use std::collections::{BTreeMap, BTreeSet};

use super::context::{Ctx, Effective};
use super::ReportKind;

/// One unit's names and relations as written (relations to unlisted units are ignored).
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// The unit's name first, then any alias it was asked for by.
    pub names: Vec<String>,
    pub after: Vec<String>,
    pub before: Vec<String>,
    pub wants: Vec<String>,
}

/// A unit's `After=`/`Before=` and its dependencies (`Requires=`, `Wants=`, `BindsTo=`, `Requisite=`,
/// `Upholds=`); a dependency on a service that is not listed is reported (it will not run).
pub(crate) fn relations(cx: &mut Ctx, eff: &Effective, listed: &BTreeSet<String>) -> Node {
    let mut n = Node::default();
    for key in [
        "After",
        "Before",
        "Requires",
        "Wants",
        "BindsTo",
        "Requisite",
        "Upholds",
    ] {
        for a in eff.all("Unit", key) {
            for name in cx.words(a) {
                match key {
                    "After" => n.after.push(name),
                    "Before" => n.before.push(name),
                    _ => {
                        if name.ends_with(".service") && !listed.contains(&name) {
                            cx.report(a, ReportKind::Ignored, format!(
                                "{name} is not among the listed units: it is not started (list it too to run it)"
                            ));
                        }
                        n.wants.push(name);
                    }
                }
            }
        }
    }
    n
}

/// Indices of `nodes` in start order, or the names along an ordering cycle (first name repeated at the end).
pub(crate) fn order(nodes: &[Node]) -> Result<Vec<usize>, Vec<String>> {
    let index: BTreeMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.names.iter().map(move |s| (s.as_str(), i)))
        .collect();
    let find = |s: &String| index.get(s.as_str()).copied();
    // preds[i]: units that must start before i.
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut soft: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for j in n.after.iter().filter_map(find).filter(|j| *j != i) {
            preds[i].push(j);
        }
        for j in n.before.iter().filter_map(find).filter(|j| *j != i) {
            preds[j].push(i);
        }
        for j in n.wants.iter().filter_map(find).filter(|j| *j != i) {
            soft[i].push(j);
        }
    }
    let mut placed = vec![false; nodes.len()];
    let mut out = Vec::with_capacity(nodes.len());
    while out.len() < nodes.len() {
        let ready: Vec<usize> = (0..nodes.len())
            .filter(|&i| !placed[i] && preds[i].iter().all(|&j| placed[j]))
            .collect();
        let Some(&first) = ready.first() else {
            return Err(cycle(&preds, &placed, nodes));
        };
        let pick = ready
            .iter()
            .copied()
            .find(|&i| soft[i].iter().all(|&j| placed[j] || !ready.contains(&j)))
            .unwrap_or(first);
        placed[pick] = true;
        out.push(pick);
    }
    Ok(out)
}

/// Walk hard predecessors among the unplaced units until one repeats.
fn cycle(preds: &[Vec<usize>], placed: &[bool], nodes: &[Node]) -> Vec<String> {
    let start = (0..nodes.len()).find(|&i| !placed[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut cur = start;
    while let Some(&next) = preds[cur].iter().find(|&&j| !placed[j]) {
        if let Some(pos) = path.iter().position(|&p| p == next) {
            // path[pos..] walks backwards in start order: print it forwards, from the first listed unit.
            let mut ring: Vec<usize> = path[pos..].iter().rev().copied().collect();
            let min = ring
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| **i)
                .map_or(0, |(k, _)| k);
            ring.rotate_left(min);
            ring.push(ring[0]);
            return ring.iter().map(|&i| nodes[i].names[0].clone()).collect();
        }
        path.push(next);
        cur = next;
    }
    vec![nodes[start].names[0].clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, after: &[&str], before: &[&str], wants: &[&str]) -> Node {
        let v = |x: &[&str]| x.iter().map(std::string::ToString::to_string).collect();
        Node {
            names: vec![name.into()],
            after: v(after),
            before: v(before),
            wants: v(wants),
        }
    }

    #[test]
    fn hard_then_soft_then_given_order() {
        let nodes = [
            node("web", &["php", "network.target"], &[], &[]),
            node("php", &[], &[], &["db"]),
            node("db", &[], &["web"], &[]),
        ];
        assert_eq!(order(&nodes).unwrap(), [2, 1, 0]);
        let nodes = [node("a", &[], &[], &[]), node("b", &[], &[], &[])];
        assert_eq!(order(&nodes).unwrap(), [0, 1]);
        // Soft dependencies in a loop are not an error.
        let nodes = [node("a", &[], &[], &["b"]), node("b", &[], &[], &["a"])];
        assert_eq!(order(&nodes).unwrap(), [0, 1]);
    }

    #[test]
    fn aliases_and_unlisted_units() {
        let mut db = node("mariadb.service", &[], &[], &[]);
        db.names.push("mysql.service".into());
        let nodes = [
            node(
                "web.service",
                &["mysql.service", "network-online.target"],
                &[],
                &["redis.service"],
            ),
            db,
        ];
        assert_eq!(
            order(&nodes).unwrap(),
            [1, 0],
            "After= an alias orders after the unit"
        );
    }

    #[test]
    fn cycles_are_named() {
        let nodes = [
            node("x", &[], &[], &[]),
            node("a", &["c"], &[], &[]),
            node("c", &["a"], &[], &["x"]),
        ];
        assert_eq!(order(&nodes).unwrap_err(), ["a", "c", "a"]);
        let nodes = [
            node("a", &["c"], &[], &[]),
            node("b", &["a"], &[], &[]),
            node("c", &["b"], &[], &[]),
        ];
        assert_eq!(order(&nodes).unwrap_err(), ["a", "b", "c", "a"]);
        let nodes = [node("a", &[], &["b"], &[]), node("b", &[], &["a"], &[])];
        assert_eq!(order(&nodes).unwrap_err(), ["a", "b", "a"]);
    }
}
