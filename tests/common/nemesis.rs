//! Seeded random walks for the model checkers: a nemesis that, in phases of
//! a few steps, cuts one node (or none) off — its messages wait in the
//! network — while faults stay rarer than progress, so walks get deep.

use cashe::raft::{NodeId, SplitMix64};

/// What a model action is, as far as the nemesis cares.
pub enum Move {
    Deliver {
        from: NodeId,
        to: NodeId,
    },
    Duplicate {
        from: NodeId,
        to: NodeId,
    },
    Sync,
    Timeout,
    /// One tick of a node's clock, in a model of drifting clocks: the node
    /// cut off in a phase has the slowest clock, ticking only when it must
    /// (no other move is left), the others tick eagerly.
    Tick {
        node: NodeId,
    },
    /// Real time passes, in a model of drifting clocks.
    Elapse,
    /// A client request, proposal, read or membership change.
    Request,
    /// A crash or a lost message.
    Fault,
}

pub struct Nemesis {
    rng: SplitMix64,
    isolated: Option<NodeId>,
    phase_left: u64,
}

impl Nemesis {
    pub fn new(seed: u64) -> Nemesis {
        Nemesis { rng: SplitMix64::new(seed), isolated: None, phase_left: 0 }
    }

    pub fn pick(&mut self, below: usize) -> usize {
        self.rng.range(0, below as u64) as usize
    }

    /// Picks the index of the next action.
    /// `phase_steps`: the range of a phase's length in steps.
    pub fn choose<A>(
        &mut self,
        nodes: &[NodeId],
        actions: &[A],
        classify: impl Fn(&A) -> Move,
        phase_steps: (u64, u64),
    ) -> usize {
        if self.phase_left == 0 {
            self.phase_left = self.rng.range(phase_steps.0, phase_steps.1);
            let pick = self.pick(nodes.len() + 1);
            self.isolated = nodes.get(pick).copied();
        }
        self.phase_left -= 1;
        let isolated = self.isolated;
        let cut = |from: NodeId, to: NodeId| Some(from) == isolated || Some(to) == isolated;
        // The slow clock ticks once real time cannot pass without it.
        let time_stuck = !actions.iter().any(|action| matches!(classify(action), Move::Elapse));
        let weight = |action: &A| match classify(action) {
            Move::Deliver { from, to } | Move::Duplicate { from, to } if cut(from, to) => 0,
            Move::Deliver { .. } => 20,
            Move::Sync => 12,
            Move::Timeout => 4,
            Move::Tick { node } if Some(node) == isolated && !time_stuck => 0,
            Move::Tick { .. } => 6,
            Move::Elapse => 3,
            Move::Request => 3,
            Move::Duplicate { .. } | Move::Fault => 1,
        };
        let total: u64 = actions.iter().map(weight).sum();
        if total == 0 {
            return self.pick(actions.len());
        }
        let mut pick = self.rng.range(0, total);
        for (k, action) in actions.iter().enumerate() {
            let w = weight(action);
            if pick < w {
                return k;
            }
            pick -= w;
        }
        unreachable!("pick below total weight")
    }
}

/// A model the nemesis can drive.
pub trait NemesisModel: stateright::Model {
    fn nodes(state: &Self::State) -> Vec<NodeId>;
    fn classify(action: &Self::Action) -> Move;
    /// The range of a nemesis phase's length, in steps.
    fn phase_steps(_state: &Self::State) -> (u64, u64) {
        (4, 24)
    }
}

/// The stateright chooser for random walks over any `NemesisModel`.
#[derive(Clone)]
pub struct NemesisChooser;

impl<M: NemesisModel> stateright::Chooser<M> for NemesisChooser {
    type State = Nemesis;

    fn new_state(&self, seed: u64) -> Nemesis {
        Nemesis::new(seed)
    }

    fn choose_initial_state(&self, nemesis: &mut Nemesis, initial: &[M::State]) -> usize {
        nemesis.pick(initial.len())
    }

    fn choose_action(&self, nemesis: &mut Nemesis, state: &M::State, actions: &[M::Action]) -> usize {
        nemesis.choose(&M::nodes(state), actions, M::classify, M::phase_steps(state))
    }
}
