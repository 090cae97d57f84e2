use super::*;

fn bridge(name: &str, internal: bool) -> Bridge {
    Bridge {
        name: name.into(),
        internal,
        ipv6: false,
    }
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

/// `iptables-nft -t filter -S` of a host where Docker 20.10 runs with one container publishing
/// port 8080, and rcompose project `web` has a network.
const DOCKER_SAVE: &str = r#"-P INPUT ACCEPT
-P FORWARD DROP
-P OUTPUT ACCEPT
-N DOCKER
-N DOCKER-ISOLATION-STAGE-1
-N DOCKER-ISOLATION-STAGE-2
-N DOCKER-USER
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -i rc-0000000000a1 -m comment --comment "rcompose:web" -j ACCEPT
-A DOCKER-USER -o rc-0000000000a1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "rcompose:web" -j ACCEPT
-A DOCKER-USER -o rc-0000000000a1 -m conntrack --ctstate DNAT -m comment --comment "rcompose:web" -j ACCEPT
-A DOCKER-USER -i rc-0000000000a1 -m comment --comment "rcompose:web2" -j ACCEPT
-A DOCKER-USER -j RETURN
"#;

#[test]
fn docker_tables_are_recognised_with_our_rules_by_project() {
    let t = parse_filter(DOCKER_SAVE);
    assert!(t.forward_drop && t.docker_user && t.drops_forwarded());
    assert_eq!(t.target_chain(), "DOCKER-USER");
    let projects: Vec<&str> = t.ours.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(projects, ["web", "web", "web", "web2"]);
    assert_eq!(
        t.ours[0].1,
        Rule {
            chain: "DOCKER-USER".into(),
            spec: words("-i rc-0000000000a1 -m comment --comment rcompose:web -j ACCEPT"),
        }
    );
}

#[test]
fn a_host_that_forwards_everything_needs_nothing() {
    let t = parse_filter("-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n");
    assert!(!t.drops_forwarded());
    assert!(plan("web", &[bridge("rc-0000000000a1", false)], &t).is_empty());
    // A policy of DROP without Docker: the rules go to the top of FORWARD.
    let t = parse_filter("-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n");
    assert_eq!(t.target_chain(), "FORWARD");
    let ops = plan("web", &[bridge("rc-0000000000a1", false)], &t);
    assert_eq!(ops.len(), 3);
    assert!(ops
        .iter()
        .all(|o| matches!(o, Op::Insert(r, _) if r.chain == "FORWARD")));
}

#[test]
fn rules_accept_out_of_the_bridge_replies_and_published_ports() {
    let rules = desired(
        "web",
        &[
            bridge("rc-0000000000a1", false),
            bridge("rc-0000000000a2", true),
        ],
        "DOCKER-USER",
    );
    let specs: Vec<String> = rules.iter().map(|r| r.spec.join(" ")).collect();
    assert_eq!(
        specs,
        [
            "-i rc-0000000000a1 -m comment --comment rcompose:web -j ACCEPT",
            "-o rc-0000000000a1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment rcompose:web -j ACCEPT",
            "-o rc-0000000000a1 -m conntrack --ctstate DNAT -m comment --comment rcompose:web -j ACCEPT",
            // An internal network: only within its bridge.
            "-i rc-0000000000a2 -o rc-0000000000a2 -m comment --comment rcompose:web -j ACCEPT",
        ]
    );
    assert!(rules.iter().all(|r| r.chain == "DOCKER-USER"));
}

#[test]
fn names_that_are_no_interface_make_no_rule() {
    for bad in ["", "a b", "x\"y", "rc-0000000000000a1", "-j", "a;b"] {
        let rules = desired("web", &[bridge(bad, false)], "FORWARD");
        // "-j" is a valid interface name: it stays one word after -i, never an option.
        if bad == "-j" {
            assert_eq!(rules[0].spec[..2], ["-i", "-j"]);
            continue;
        }
        assert!(rules.is_empty(), "{bad:?}");
    }
}

#[test]
fn up_again_changes_nothing_and_only_the_missing_rules_are_added() {
    let t = parse_filter(DOCKER_SAVE);
    assert!(plan("web", &[bridge("rc-0000000000a1", false)], &t).is_empty());
    // A second network: its three rules, at the top, in order.
    let ops = plan(
        "web",
        &[
            bridge("rc-0000000000a1", false),
            bridge("rc-0000000000a3", false),
        ],
        &t,
    );
    let args: Vec<String> = ops.iter().map(|o| o.args().join(" ")).collect();
    assert_eq!(
        args,
        [
            "-w -t filter -I DOCKER-USER 1 -i rc-0000000000a3 -m comment --comment rcompose:web -j ACCEPT",
            "-w -t filter -I DOCKER-USER 2 -o rc-0000000000a3 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment rcompose:web -j ACCEPT",
            "-w -t filter -I DOCKER-USER 3 -o rc-0000000000a3 -m conntrack --ctstate DNAT -m comment --comment rcompose:web -j ACCEPT",
        ]
    );
}

#[test]
fn a_network_gone_from_the_project_loses_its_rules() {
    let t = parse_filter(DOCKER_SAVE);
    let ops = plan("web", &[bridge("rc-0000000000a3", true)], &t);
    let deletes = ops.iter().filter(|o| matches!(o, Op::Delete(_))).count();
    let inserts = ops.iter().filter(|o| matches!(o, Op::Insert(..))).count();
    assert_eq!((deletes, inserts), (3, 1), "{ops:?}");
}

#[test]
fn removal_takes_exactly_the_projects_rules() {
    let t = parse_filter(DOCKER_SAVE);
    let ops = plan_remove("web", &t);
    let args: Vec<String> = ops.iter().map(|o| o.args().join(" ")).collect();
    assert_eq!(
        args,
        [
            "-w -t filter -D DOCKER-USER -i rc-0000000000a1 -m comment --comment rcompose:web -j ACCEPT",
            "-w -t filter -D DOCKER-USER -o rc-0000000000a1 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment rcompose:web -j ACCEPT",
            "-w -t filter -D DOCKER-USER -o rc-0000000000a1 -m conntrack --ctstate DNAT -m comment --comment rcompose:web -j ACCEPT",
        ]
    );
    // web2 shares the bridge: its rule stays until its own down.
    assert_eq!(plan_remove("web2", &t).len(), 1);
    assert!(plan_remove("we", &t).is_empty());
    // Rules left in FORWARD after Docker went away are found too.
    let t = parse_filter(
        "-P FORWARD ACCEPT\n-A FORWARD -i rc-0000000000a1 -m comment --comment \"rcompose:web\" -j ACCEPT\n",
    );
    assert_eq!(plan_remove("web", &t).len(), 1);
}

#[test]
fn quoted_words_are_split_as_iptables_prints_them() {
    assert_eq!(
        split_words(r#"-A X -m comment --comment "a b\"c" -j ACCEPT"#),
        [
            "-A",
            "X",
            "-m",
            "comment",
            "--comment",
            "a b\"c",
            "-j",
            "ACCEPT"
        ]
    );
    assert_eq!(split_words("  -P FORWARD DROP "), ["-P", "FORWARD", "DROP"]);
}
