//! The load-balance node of a new session (redirect preference lists, then a draw
//! weighted by backend_weight over the nodes usable for reads), and the weighted draw
//! the relay also uses per statement.

use super::{redirect, ChildContext};

impl ChildContext<'_> {
    /// The load-balance node of a new session: the redirect preference lists first
    /// (application name, then database, then user), else a live node chosen at random
    /// in proportion to backend_weight (the primary included, as in Pgpool-II). Standbys
    /// beyond delay_threshold are passed over. None when load balancing does not apply.
    pub fn load_balance_node(&self, user: &str, database: &str, app_name: &str) -> Option<usize> {
        if !self.load_balancing() {
            return None;
        }
        let chosen = self.choose_load_balance_node(user, database, app_name);
        if let Some(n) = chosen {
            log_lb_choice(n);
        }
        chosen
    }

    fn choose_load_balance_node(
        &self,
        user: &str,
        database: &str,
        app_name: &str,
    ) -> Option<usize> {
        let usable = |i: usize| self.usable_for_reads(i);
        let weighted = |i: usize| self.cfg.backends[i].weight > 0.0 && usable(i);
        let rule = redirect::find(&self.app_redirects, app_name)
            .or_else(|| redirect::find(&self.db_redirects, database))
            .or_else(|| redirect::find(&self.user_redirects, user));
        // As Pgpool-II: a rule's weight is the chance that it applies; when it does not,
        // a node target is excluded from the draw and a standby target means the primary.
        if let Some(rule) = rule {
            let hit = random_unit() < rule.weight;
            let primary = self.target_node();
            match rule.target {
                redirect::Target::Primary if hit => return primary,
                redirect::Target::Primary => {
                    return self
                        .weighted_pick(|i| Some(i) != primary && weighted(i))
                        .or(primary)
                }
                redirect::Target::Standby if hit => {
                    return self
                        .weighted_pick(|i| Some(i) != primary && usable(i))
                        .or(primary)
                }
                redirect::Target::Standby => return primary,
                redirect::Target::Node(n) if hit => {
                    if n < self.cfg.backends.len() && usable(n) {
                        return Some(n);
                    }
                }
                redirect::Target::Node(n) => {
                    if let Some(other) = self.weighted_pick(|i| i != n && weighted(i)) {
                        return Some(other);
                    }
                }
            }
        }
        self.weighted_pick(weighted)
    }

    /// A node among those `eligible`, at random in proportion to backend_weight (equal
    /// chances when all their weights are 0).
    fn weighted_pick(&self, eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let candidates: Vec<(usize, f64)> = (0..self.cfg.backends.len())
            .filter(|&i| eligible(i))
            .map(|i| (i, self.cfg.backends[i].weight))
            .collect();
        weighted_choice(&candidates)
    }
}

/// The debug line Pgpool-II writes for every load-balance choice (its regression tests
/// count them).
pub(crate) fn log_lb_choice(node: usize) {
    log::debug!("selecting load balance node: selected backend id is {node}");
}

/// One of `candidates` (id, weight) at random in proportion to the weights (equal chances
/// when they are all 0); None when there is none.
pub(crate) fn weighted_choice(candidates: &[(usize, f64)]) -> Option<usize> {
    let (last, _) = candidates.split_last()?;
    let total: f64 = candidates.iter().map(|(_, w)| w).sum();
    let r = random_unit();
    if total <= 0.0 {
        let k = ((r * candidates.len() as f64) as usize).min(candidates.len() - 1);
        return Some(candidates[k].0);
    }
    let mut acc = 0.0;
    for (i, w) in candidates {
        acc += w / total;
        if r < acc {
            return Some(*i);
        }
    }
    Some(last.0)
}

/// A random number in [0, 1).
fn random_unit() -> f64 {
    protocol::auth::random_u32() as f64 / (u32::MAX as f64 + 1.0)
}
