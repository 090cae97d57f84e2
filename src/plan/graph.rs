//! The service graph: who depends on whom, in which order to start and stop.
//!
//! Nodes are services, an edge `a → b` means "a depends on b". Starting walks the graph in
//! levels (every service of a level can start in parallel once the previous levels are up);
//! stopping walks the same levels backwards.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dependency cycle detected: {}", .0.join(" -> "))]
pub struct CycleError(pub Vec<String>);

#[derive(Debug, Clone, Default)]
pub struct ServiceGraph {
    graph: DiGraph<String, ()>,
    /// Sorted by name so every walk is deterministic.
    index: BTreeMap<String, NodeIndex>,
}

impl ServiceGraph {
    /// Build the graph from `(service, dependencies)` pairs. Dependencies naming services that
    /// are not in the list are ignored (the loader reports undefined ones).
    pub fn new<'a, I, D>(services: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, D)>,
        D: IntoIterator<Item = &'a str>,
    {
        let services: Vec<(&str, Vec<&str>)> = services
            .into_iter()
            .map(|(n, d)| (n, d.into_iter().collect()))
            .collect();
        let mut g = ServiceGraph::default();
        for (name, _) in &services {
            let idx = g.graph.add_node(name.to_string());
            g.index.insert(name.to_string(), idx);
        }
        for (name, deps) in &services {
            let from = g.index[*name];
            for dep in deps {
                if let Some(&to) = g.index.get(*dep) {
                    g.graph.update_edge(from, to, ());
                }
            }
        }
        g
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The direct dependencies of `service`, sorted.
    pub fn dependencies(&self, service: &str) -> Vec<String> {
        self.neighbors(service, Direction::Outgoing)
    }

    /// The services that depend directly on `service`, sorted.
    pub fn dependents(&self, service: &str) -> Vec<String> {
        self.neighbors(service, Direction::Incoming)
    }

    fn neighbors(&self, service: &str, dir: Direction) -> Vec<String> {
        let Some(&idx) = self.index.get(service) else {
            return Vec::new();
        };
        let mut out: Vec<String> = self
            .graph
            .neighbors_directed(idx, dir)
            .map(|n| self.graph[n].clone())
            .collect();
        out.sort();
        out
    }

    /// The graph of a project's services and their `dependencies()`.
    pub fn of_project(project: &crate::compose::model::Project) -> Self {
        ServiceGraph::new(
            project
                .services
                .iter()
                .map(|(n, s)| (n.as_str(), s.dependencies())),
        )
    }

    /// `Err` naming the cycle when there is one.
    pub fn check_acyclic(&self) -> Result<(), CycleError> {
        self.find_cycle().map_or(Ok(()), |c| Err(CycleError(c)))
    }

    /// A dependency cycle, as the path that closes it (`a -> b -> a`), found by a depth-first
    /// walk from the services in name order.
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut marks = vec![Mark::New; self.graph.node_count()];
        let mut path: Vec<NodeIndex> = Vec::new();

        fn visit(
            g: &ServiceGraph,
            n: NodeIndex,
            marks: &mut [Mark],
            path: &mut Vec<NodeIndex>,
        ) -> Option<Vec<String>> {
            marks[n.index()] = Mark::OnPath;
            path.push(n);
            let mut next: Vec<NodeIndex> = g.graph.neighbors(n).collect();
            next.sort_by(|a, b| g.graph[*a].cmp(&g.graph[*b]));
            for m in next {
                match marks[m.index()] {
                    Mark::OnPath => {
                        let start = path.iter().position(|p| *p == m).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|p| g.graph[*p].clone()).collect();
                        cycle.push(g.graph[m].clone());
                        return Some(cycle);
                    }
                    Mark::New => {
                        if let Some(c) = visit(g, m, marks, path) {
                            return Some(c);
                        }
                    }
                    Mark::Done => {}
                }
            }
            path.pop();
            marks[n.index()] = Mark::Done;
            None
        }

        for &n in self.index.values() {
            if marks[n.index()] == Mark::New {
                if let Some(c) = visit(self, n, &mut marks, &mut path) {
                    return Some(c);
                }
            }
        }
        None
    }

    /// Start order in levels: every service of level `k` depends only on services of levels
    /// before `k`. Names within a level are sorted.
    pub fn start_levels(&self) -> Result<Vec<Vec<String>>, CycleError> {
        if let Some(c) = self.find_cycle() {
            return Err(CycleError(c));
        }
        let mut remaining: BTreeMap<NodeIndex, usize> = self
            .index
            .values()
            .map(|&n| (n, self.graph.neighbors(n).count()))
            .collect();
        let mut levels = Vec::new();
        while !remaining.is_empty() {
            let mut ready: Vec<NodeIndex> = remaining
                .iter()
                .filter(|(_, &deps)| deps == 0)
                .map(|(&n, _)| n)
                .collect();
            ready.sort_by(|a, b| self.graph[*a].cmp(&self.graph[*b]));
            for n in &ready {
                remaining.remove(n);
                for dependent in self.graph.neighbors_directed(*n, Direction::Incoming) {
                    if let Some(c) = remaining.get_mut(&dependent) {
                        *c -= 1;
                    }
                }
            }
            levels.push(ready.iter().map(|n| self.graph[*n].clone()).collect());
        }
        Ok(levels)
    }

    /// Stop order: the start levels reversed (dependents stop before their dependencies).
    pub fn stop_levels(&self) -> Result<Vec<Vec<String>>, CycleError> {
        let mut levels = self.start_levels()?;
        levels.reverse();
        Ok(levels)
    }

    /// `services` plus everything they depend on, transitively, sorted.
    pub fn with_dependencies(&self, services: &[String]) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<String> = services.to_vec();
        while let Some(s) = stack.pop() {
            if seen.insert(s.clone()) {
                stack.extend(self.dependencies(&s));
            }
        }
        seen.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&'static str, &[&'static str])]) -> ServiceGraph {
        ServiceGraph::new(edges.iter().map(|(n, d)| (*n, d.iter().copied())))
    }

    #[test]
    fn levels_start_dependencies_first_and_stop_in_reverse() {
        let g = graph(&[
            ("web", &["redis", "db"]),
            ("worker", &["redis"]),
            ("redis", &[]),
            ("db", &[]),
            ("proxy", &["web"]),
        ]);
        assert_eq!(
            g.start_levels().unwrap(),
            vec![
                vec!["db".to_string(), "redis".into()],
                vec!["web".into(), "worker".into()],
                vec!["proxy".into()],
            ]
        );
        assert_eq!(g.stop_levels().unwrap()[0], vec!["proxy".to_string()]);
        assert_eq!(
            g.dependents("redis"),
            vec!["web".to_string(), "worker".into()]
        );
        assert_eq!(
            g.with_dependencies(&["proxy".into()]),
            vec![
                "db".to_string(),
                "proxy".into(),
                "redis".into(),
                "web".into()
            ]
        );
    }

    #[test]
    fn cycles_are_named() {
        let g = graph(&[("s1", &["s2"]), ("s2", &["s3"]), ("s3", &["s1"])]);
        assert_eq!(
            g.start_levels().unwrap_err().to_string(),
            "dependency cycle detected: s1 -> s2 -> s3 -> s1"
        );
        let g = graph(&[("a", &["a"])]);
        assert_eq!(g.find_cycle().unwrap(), vec!["a".to_string(), "a".into()]);
    }

    #[test]
    fn unknown_dependencies_are_ignored_and_empty_graph_has_no_levels() {
        let g = graph(&[("a", &["missing"])]);
        assert_eq!(g.start_levels().unwrap(), vec![vec!["a".to_string()]]);
        assert!(graph(&[]).start_levels().unwrap().is_empty());
        assert!(graph(&[]).is_empty());
    }
}
