//! Raft glue over an in-memory network: elections, the priority bias, commits reaching
//! every node, a leader cut off from its majority stepping down, and the state file.

use super::*;

struct Net {
    nodes: Vec<Consensus>,
    /// cut[i][j]: messages from i to j are dropped.
    cut: Vec<Vec<bool>>,
    committed: Vec<Vec<Vec<u8>>>,
}

impl Net {
    fn new(n: usize) -> Net {
        Net::with_files(n, None)
    }

    /// Nodes that persist their state under `dir` (a candidate persists its vote before
    /// it has any entry: the empty-log case).
    fn with_files(n: usize, dir: Option<&std::path::Path>) -> Net {
        let file = |i: usize| dir.map(|d| d.join(format!("n{i}.raft")));
        Net {
            nodes: (0..n)
                .map(|i| Consensus::new(i, n, i, file(i)).unwrap())
                .collect(),
            cut: vec![vec![false; n]; n],
            committed: vec![Vec::new(); n],
        }
    }

    fn isolate(&mut self, x: usize, on: bool) {
        for j in 0..self.nodes.len() {
            if j != x {
                self.cut[x][j] = on;
                self.cut[j][x] = on;
            }
        }
    }

    fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            for n in &mut self.nodes {
                n.tick();
            }
            for _ in 0..5 {
                let mut mail = Vec::new();
                for (i, n) in self.nodes.iter_mut().enumerate() {
                    let out = n.drain().unwrap();
                    self.committed[i].extend(out.committed);
                    for (to, m) in out.messages {
                        if !self.cut[i][to] {
                            mail.push((to, m));
                        }
                    }
                }
                for (to, m) in mail {
                    self.nodes[to].step(&m).unwrap();
                }
            }
        }
    }

    fn leaders(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].is_leader())
            .collect()
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pgpool-rs-raft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn elects_one_leader_and_commits_everywhere() {
    let dir = scratch("elect");
    let mut net = Net::with_files(3, Some(&dir));
    net.run(60);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "one leader");
    // rank 0 campaigns first
    assert_eq!(leaders[0], 0);
    assert!(net.nodes.iter().all(|n| n.leader() == Some(0)));
    assert!(net.nodes[0].propose(b"decision".to_vec()));
    assert!(
        !net.nodes[1].propose(b"no".to_vec()),
        "followers cannot propose"
    );
    net.run(5);
    for c in &net.committed {
        assert_eq!(c, &vec![b"decision".to_vec()]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn isolated_leader_steps_down_and_majority_elects_another() {
    let mut net = Net::new(3);
    net.run(60);
    assert_eq!(net.leaders(), vec![0]);
    net.isolate(0, true);
    net.run(3 * ELECTION_TICKS);
    assert!(!net.nodes[0].is_leader(), "cut-off leader must step down");
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1);
    assert_ne!(leaders[0], 0);
    // the lone node cannot commit anything, the majority can
    assert!(!net.nodes[0].propose(b"x".to_vec()));
    assert!(net.nodes[leaders[0]].propose(b"y".to_vec()));
    net.run(5);
    assert!(net.committed[0].is_empty());
    assert_eq!(net.committed[leaders[0]], vec![b"y".to_vec()]);
    // healing: one leader, the lone node catches up
    net.isolate(0, false);
    net.run(40);
    assert_eq!(net.leaders().len(), 1);
    assert_eq!(net.committed[0], vec![b"y".to_vec()]);
}

#[test]
fn transfer_moves_leadership() {
    let mut net = Net::new(3);
    net.run(60);
    assert_eq!(net.leaders(), vec![0]);
    assert!(net.nodes[0].caught_up(2));
    net.nodes[0].transfer_to(2);
    net.run(10);
    assert_eq!(net.leaders(), vec![2]);
}

#[test]
fn state_file_keeps_term_and_vote() {
    let dir = scratch("restart");
    let path = dir.join("n0.raft");
    {
        let mut c = Consensus::new(0, 1, 0, Some(path.clone())).unwrap();
        for _ in 0..40 {
            c.tick();
            c.drain().unwrap();
        }
        assert!(c.is_leader());
        assert!(c.propose(b"kept".to_vec()));
        let out = c.drain().unwrap();
        assert_eq!(out.committed, vec![b"kept".to_vec()]);
    }
    let c = Consensus::new(0, 1, 0, Some(path.clone())).unwrap();
    assert!(c.term() >= 1, "term survives a restart");
    // written for another cluster size: ignored, not fatal
    let other = Consensus::new(0, 3, 0, Some(path.clone())).unwrap();
    assert_eq!(other.term(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
