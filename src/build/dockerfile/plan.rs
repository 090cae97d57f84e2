//! Targets and stage plans: which stages a target needs and in what order, as BuildKit's
//! dispatcher resolves FROM, `COPY --from` and `RUN --mount=from=`.

use std::collections::{BTreeMap, BTreeSet};

use super::instructions::mount_from;
use super::shell::Expander;
use super::{did_you_mean, go_quote, Dockerfile, DockerfileError, Kind, Location};

/// The stages a target needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StagePlan {
    /// Stage indices to build, dependencies first (file order, which BuildKit also uses: a
    /// stage can only depend on earlier ones). The target is last.
    pub order: Vec<usize>,
    /// For each stage in `order`, the stages it needs (its FROM stage, `COPY --from` and
    /// `RUN --mount=from=` stages).
    pub deps: BTreeMap<usize, BTreeSet<usize>>,
    /// External images the plan needs (FROM, `COPY --from`, mount `from`), expanded; never
    /// `scratch`.
    pub images: BTreeSet<String>,
    /// Each stage's FROM, expanded: a stage index or an image (or `scratch`).
    pub bases: BTreeMap<usize, Base>,
    /// Each stage's `FROM --platform`, expanded (stages without one are absent).
    pub platforms: BTreeMap<usize, String>,
}

/// A stage's dependencies, the images it names, and its uses of stages not yet built at that
/// point (an error only if the stage is built).
type StageRefs = (
    BTreeSet<usize>,
    BTreeSet<String>,
    Vec<(usize, Location, String)>,
);

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Stage(usize),
    Image(String),
    Scratch,
}

impl Dockerfile {
    /// The stage `target` names (lower-case comparison; the last stage of that name), or the
    /// last stage.
    pub fn target(&self, target: Option<&str>) -> Result<usize, DockerfileError> {
        let file = || {
            self.stages
                .first()
                .map(|s| s.location.file.to_path_buf())
                .or_else(|| {
                    self.meta_arg_instructions
                        .first()
                        .map(|i| i.location.file.to_path_buf())
                })
                .unwrap_or_default()
        };
        let Some(last) = self.stages.last() else {
            return Err(DockerfileError::Parse {
                file: file(),
                line: 1,
                column: 1,
                message: "dockerfile contains no stages to build".into(),
            });
        };
        let Some(t) = target.filter(|t| !t.is_empty()) else {
            return Ok(last.index);
        };
        let lower = t.to_lowercase();
        if let Some(s) = self
            .stages
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Ok(s.index);
        }
        let names: Vec<&str> = self
            .stages
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect();
        Err(DockerfileError::UnknownTarget {
            file: file(),
            target: t.to_string(),
            suggestion: did_you_mean(t, &names, true),
        })
    }

    /// The stages `target` needs, dependencies first. `meta_env` gives the global ARGs (build
    /// arguments over defaults, see [`Dockerfile::meta_values`]) for expanding FROM.
    /// `COPY --from` is not expanded: as in BuildKit, a variable there is an error.
    pub fn plan(
        &self,
        target: Option<&str>,
        meta_env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<StagePlan, DockerfileError> {
        let target = self.target(target)?;
        let x = Expander::new(self.directives.escape);
        // Every stage's base first, as BuildKit resolves them all before the target's graph.
        let mut bases = Vec::with_capacity(self.stages.len());
        for (i, st) in self.stages.iter().enumerate() {
            let name = x
                .word(&st.base, meta_env)
                .map_err(|source| DockerfileError::Expand {
                    file: st.location.file.to_path_buf(),
                    line: st.location.line,
                    column: st.location.column,
                    instruction: "FROM".into(),
                    source: Box::new(source),
                })?;
            let name = name.value;
            if name.is_empty() {
                return Err(DockerfileError::invalid(
                    &st.location,
                    format!("base name ({}) should not be blank", st.base),
                ));
            }
            // A stage defined earlier under that exact name; the latest one wins.
            let stage = self.stages[..i]
                .iter()
                .rev()
                .find(|s| s.name.as_deref() == Some(name.as_str()));
            bases.push(match stage {
                Some(s) => Base::Stage(s.index),
                None if name == "scratch" => Base::Scratch,
                None => Base::Image(name),
            });
        }
        let by_name = |n: &str| {
            let lower = n.to_lowercase();
            self.stages
                .iter()
                .rev()
                .find(|s| s.name.as_deref() == Some(lower.as_str()))
                .map(|s| s.index)
        };

        // Each stage's dependencies and the images it names.
        let mut deps: BTreeMap<usize, StageRefs> = BTreeMap::new();
        for (i, st) in self.stages.iter().enumerate() {
            let mut d = BTreeSet::new();
            let mut images = BTreeSet::new();
            // Uses of later (or the same) stages, reported only if this stage is built.
            let mut forward = Vec::new();
            match bases.get(i) {
                Some(Base::Stage(j)) => {
                    d.insert(*j);
                }
                Some(Base::Image(img)) => {
                    images.insert(img.clone());
                }
                _ => {}
            }
            for ins in &st.instructions {
                match &ins.kind {
                    Kind::Copy(c) => {
                        let Some(from) = &c.from else { continue };
                        let check = x.word(from, &|_| None).map(|e| e.value);
                        if check.as_deref() != Ok(from.as_str()) {
                            return Err(DockerfileError::invalid(
                                &ins.location,
                                "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                            ));
                        }
                        let j = match parse_go_atoi(from) {
                            Some(n) => {
                                match usize::try_from(n).ok().filter(|n| *n < self.stages.len()) {
                                    Some(j) => Some(j),
                                    None => {
                                        return Err(DockerfileError::invalid(
                                            &ins.location,
                                            format!("invalid stage index {n}"),
                                        ))
                                    }
                                }
                            }
                            None => by_name(from),
                        };
                        match j {
                            Some(j) => {
                                if j >= i {
                                    forward.push((
                                        j,
                                        ins.location.clone(),
                                        format!(
                                            "cannot copy from stage {}, it needs to be defined before current stage {}",
                                            go_quote(from),
                                            go_quote(&st.display_name())
                                        ),
                                    ));
                                }
                                d.insert(j);
                            }
                            None => {
                                images.insert(from.clone());
                            }
                        }
                    }
                    Kind::Run(r) => {
                        for spec in &r.mount_specs {
                            let Some(from) = mount_from(spec) else {
                                continue;
                            };
                            match by_name(&from) {
                                Some(j) => {
                                    if j >= i {
                                        forward.push((
                                            j,
                                            ins.location.clone(),
                                            format!(
                                                "cannot mount from stage {}, stage needs to be defined before current command",
                                                go_quote(&from)
                                            ),
                                        ));
                                    }
                                    d.insert(j);
                                }
                                None => {
                                    images.insert(from);
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
            deps.insert(i, (d, images, forward));
        }

        // A cycle anywhere is an error (BuildKit checks every stage, built or not).
        let dep_list = |i: usize| -> Vec<usize> {
            deps.get(&i)
                .map(|d| d.0.iter().copied().collect())
                .unwrap_or_default()
        };
        let mut state = vec![0u8; self.stages.len()]; // 0 new, 1 on the path, 2 done
        for root in 0..self.stages.len() {
            if state.get(root) != Some(&0) {
                continue;
            }
            let mut stack: Vec<(usize, Vec<usize>)> = vec![(root, dep_list(root))];
            if let Some(s) = state.get_mut(root) {
                *s = 1;
            }
            while let Some((node, pending)) = stack.last_mut() {
                let node = *node;
                match pending.pop() {
                    Some(dep) => match state.get(dep).copied() {
                        Some(0) => {
                            if let Some(s) = state.get_mut(dep) {
                                *s = 1;
                            }
                            stack.push((dep, dep_list(dep)));
                        }
                        Some(1) => {
                            if let Some(st) = self.stages.get(dep) {
                                return Err(DockerfileError::invalid(
                                    &st.location,
                                    format!(
                                        "circular dependency detected on stage: {}",
                                        st.display_name()
                                    ),
                                ));
                            }
                        }
                        _ => {}
                    },
                    None => {
                        if let Some(s) = state.get_mut(node) {
                            *s = 2;
                        }
                        stack.pop();
                    }
                }
            }
        }

        // What the target reaches.
        let mut plan = StagePlan::default();
        let mut reached = vec![false; self.stages.len()];
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            match reached.get_mut(i) {
                Some(r) if !*r => *r = true,
                _ => continue,
            }
            todo.extend(dep_list(i));
        }
        for (i, r) in reached.iter().enumerate() {
            if !*r {
                continue;
            }
            let Some((d, images, forward)) = deps.get(&i) else {
                continue;
            };
            if let Some((_, loc, msg)) = forward.first() {
                return Err(DockerfileError::invalid(loc, msg.clone()));
            }
            plan.order.push(i);
            plan.deps.insert(i, d.clone());
            plan.images.extend(images.iter().cloned());
            if let Some(b) = bases.get(i) {
                plan.bases.insert(i, b.clone());
            }
            if let Some(st) = self.stages.get(i) {
                if let Some(p) = &st.platform {
                    let v = x
                        .word(p, meta_env)
                        .map_err(|source| DockerfileError::Expand {
                            file: st.location.file.to_path_buf(),
                            line: st.location.line,
                            column: st.location.column,
                            instruction: "FROM".into(),
                            source: Box::new(source),
                        })?;
                    if v.value.is_empty() {
                        return Err(DockerfileError::invalid(
                            &st.location,
                            format!("empty platform value from expression {p}"),
                        ));
                    }
                    plan.platforms.insert(i, v.value);
                }
            }
        }
        Ok(plan)
    }

    /// The global ARG values as BuildKit's `buildMetaArgs` computes them: each meta ARG in
    /// order takes its build argument if one is given, else its default expanded with the
    /// values so far (starting from `predefined`, e.g. TARGETPLATFORM); an ARG with neither is
    /// not set.
    pub fn meta_values(
        &self,
        build_args: &dyn Fn(&str) -> Option<String>,
        predefined: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, DockerfileError> {
        let x = Expander::new(self.directives.escape);
        let mut values = predefined.clone();
        for ins in &self.meta_arg_instructions {
            let Kind::Arg(decls) = &ins.kind else {
                continue;
            };
            for d in decls {
                let value = match build_args(&d.name) {
                    Some(v) => Some(v),
                    None => match &d.default {
                        None => None,
                        Some(def) => {
                            let env = |k: &str| values.get(k).cloned();
                            let e =
                                x.word(def, &env)
                                    .map_err(|source| DockerfileError::Expand {
                                        file: ins.location.file.to_path_buf(),
                                        line: ins.location.line,
                                        column: ins.location.column,
                                        instruction: "ARG".into(),
                                        source: Box::new(source),
                                    })?;
                            Some(e.value)
                        }
                    },
                };
                if let Some(v) = value {
                    values.insert(d.name.clone(), v);
                }
            }
        }
        Ok(values)
    }
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits.
fn parse_go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Out of range is an Atoi error, which BuildKit takes as a stage name.
    s.parse::<i64>().ok()
}
