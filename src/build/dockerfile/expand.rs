//! Dispatch-time expansion of an instruction's arguments, field by field as BuildKit's
//! `Expand` methods and dispatchers do it.

use std::collections::BTreeSet;

use super::instructions::parse_mount;
use super::shell::{Env, ExpandError, Expander};
use super::{ArgDecl, DockerfileError, Heredoc, Instruction, Kind};

struct Ctx<'a> {
    x: &'a Expander,
    env: Env<'a>,
    used: BTreeSet<String>,
}

impl Ctx<'_> {
    fn word(&mut self, s: &str) -> Result<String, ExpandError> {
        let e = self.x.word(s, self.env)?;
        self.used.extend(e.used);
        Ok(e.value)
    }

    fn opt(&mut self, s: &Option<String>) -> Result<Option<String>, ExpandError> {
        s.as_deref().map(|s| self.word(s)).transpose()
    }

    fn all(&mut self, v: &[String]) -> Result<Vec<String>, ExpandError> {
        v.iter().map(|s| self.word(s)).collect()
    }

    fn pairs(&mut self, v: &[(String, String)]) -> Result<Vec<(String, String)>, ExpandError> {
        v.iter()
            .map(|(k, val)| Ok((self.word(k)?, self.word(val)?)))
            .collect()
    }

    /// COPY/ADD heredoc sources with an unquoted delimiter: variables in the body.
    fn heredocs(&mut self, docs: &[Heredoc]) -> Result<Vec<Heredoc>, ExpandError> {
        docs.iter()
            .map(|h| {
                let body = h.body();
                let content = if h.expand {
                    let e = self.x.heredoc(&body, self.env)?;
                    self.used.extend(e.used);
                    e.value
                } else {
                    body
                };
                Ok(Heredoc {
                    content,
                    chomp: false,
                    ..h.clone()
                })
            })
            .collect()
    }
}

impl Instruction {
    /// A copy with every field BuildKit expands for this instruction expanded, and the names
    /// of the variables it looked up.
    ///
    /// Expanded: ENV and LABEL keys and values; ADD/COPY sources, destination, `--chown`,
    /// `--chmod`, ADD `--checksum` and heredoc bodies with an unquoted delimiter (after which
    /// `Heredoc::chomp` is false, the tabs already removed); WORKDIR, USER, STOPSIGNAL, VOLUME;
    /// EXPOSE (split into words); ARG defaults (BuildKit expands a default only when no build
    /// argument overrides it, so the executor calls this for ARG only then); RUN `--mount`
    /// values (re-typed into `Run::mounts`, now complete). Not expanded, as in BuildKit: RUN,
    /// CMD, ENTRYPOINT, SHELL, HEALTHCHECK, ONBUILD, MAINTAINER, COPY `--from` (see
    /// [`super::Dockerfile::plan`]), `--exclude`, `--network`, `--security`.
    pub fn expand(
        &self,
        x: &Expander,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Instruction, BTreeSet<String>), DockerfileError> {
        let mut cx = Ctx {
            x,
            env,
            used: BTreeSet::new(),
        };
        let kind = self.expand_kind(&mut cx).map_err(|e| match e {
            Failure::Expand(source) => DockerfileError::Expand {
                file: self.location.file.to_path_buf(),
                line: self.location.line,
                column: self.location.column,
                instruction: self.kind.name().to_string(),
                source: Box::new(source),
            },
            Failure::Invalid(message) => DockerfileError::invalid(&self.location, message),
        })?;
        Ok((
            Instruction {
                kind,
                ..self.clone()
            },
            cx.used,
        ))
    }

    fn expand_kind(&self, cx: &mut Ctx<'_>) -> Result<Kind, Failure> {
        Ok(match &self.kind {
            Kind::Env(v) => Kind::Env(cx.pairs(v)?),
            Kind::Label(v) => Kind::Label(cx.pairs(v)?),
            Kind::Copy(c) => {
                let mut c = c.clone();
                c.chown = cx.opt(&c.chown)?;
                c.chmod = cx.opt(&c.chmod)?;
                c.sources = cx.all(&c.sources)?;
                c.dest = cx.word(&c.dest)?;
                c.heredocs = cx.heredocs(&c.heredocs)?;
                Kind::Copy(c)
            }
            Kind::Add(a) => {
                let mut a = a.clone();
                a.chown = cx.opt(&a.chown)?;
                a.chmod = cx.opt(&a.chmod)?;
                a.checksum = cx.opt(&a.checksum)?;
                a.sources = cx.all(&a.sources)?;
                a.dest = cx.word(&a.dest)?;
                a.heredocs = cx.heredocs(&a.heredocs)?;
                Kind::Add(a)
            }
            Kind::Workdir(p) => Kind::Workdir(cx.word(p)?),
            Kind::User(u) => Kind::User(cx.word(u)?),
            Kind::StopSignal(s) => Kind::StopSignal(cx.word(s)?),
            Kind::Volume(v) => Kind::Volume(cx.all(v)?),
            Kind::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    let (words, used) = cx.x.words(p, cx.env)?;
                    cx.used.extend(used);
                    out.extend(words);
                }
                Kind::Expose(out)
            }
            Kind::Arg(decls) => Kind::Arg(
                decls
                    .iter()
                    .map(|d| {
                        Ok(ArgDecl {
                            name: d.name.clone(),
                            default: cx.opt(&d.default)?,
                        })
                    })
                    .collect::<Result<_, Failure>>()?,
            ),
            Kind::Run(r) => {
                let mut r = r.clone();
                let mut mounts = Vec::new();
                for spec in &r.mount_specs {
                    let mut failed: Option<ExpandError> = None;
                    let parsed = parse_mount(spec, &mut |v| {
                        cx.word(v).map_err(|e| {
                            let msg = e.to_string();
                            failed = Some(e);
                            msg
                        })
                    });
                    match (parsed, failed) {
                        (Ok(m), _) => mounts.push(m),
                        (Err(_), Some(e)) => return Err(Failure::Expand(e)),
                        (Err(m), None) => return Err(Failure::Invalid(m)),
                    }
                }
                r.mounts = mounts;
                Kind::Run(r)
            }
            k @ (Kind::Cmd(_)
            | Kind::Entrypoint(_)
            | Kind::Shell(_)
            | Kind::Healthcheck(_)
            | Kind::OnBuild(_)
            | Kind::Maintainer(_)) => k.clone(),
        })
    }
}

enum Failure {
    Expand(ExpandError),
    Invalid(String),
}

impl From<ExpandError> for Failure {
    fn from(e: ExpandError) -> Self {
        Failure::Expand(e)
    }
}
