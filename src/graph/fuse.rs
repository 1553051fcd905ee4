//! Rewrites a shaped graph the way a fast engine runs it: BatchNorm folded into the conv (or
//! transposed conv) before it, an activation into the epilogue of the op before it, and a
//! residual `Add` of a conv's output and another tensor into the conv's epilogue
//! (`act(conv + bias + add)`). A pattern fuses only where the intermediate tensor has no other
//! reader. The fused layer takes the later layer's place, so every tensor it reads is ready.

use std::sync::Arc;

use super::shaped::{Layer, Operand, Shaped, Weight};
use super::Act;

/// Applies every fusion until none applies.
pub fn fuse(mut g: Shaped) -> Shaped {
    while let Some((i, j, how)) = find(&g) {
        let mut f = g.layers[i].clone();
        let out = g.layers[j].output();
        let act = act_of(&g.layers[j])
            .cloned()
            .unwrap_or_else(|| match &g.layers[j] {
                Layer::Act { act, .. } => act.clone(),
                _ => Act::None,
            });
        match how {
            How::Act => {}
            How::Affine => {
                let Layer::Affine { scale, shift, .. } = &g.layers[j] else {
                    unreachable!()
                };
                let (scale, shift) = (scale.clone(), shift.clone());
                fold_affine(&mut f, &scale, &shift, &mut g.weights);
            }
            How::Add(other) => {
                if let Layer::Conv { add, .. } = &mut f {
                    *add = Some(other);
                }
            }
        }
        set_epilogue(&mut f, out, act);
        g.layers[j] = f;
        g.layers.remove(i);
        let name = g.names.remove(i);
        g.names[j - 1] = name;
    }
    g
}

enum How {
    Act,
    Affine,
    Add(usize),
}

fn act_of(l: &Layer) -> Option<&Act> {
    match l {
        Layer::Conv { act, .. }
        | Layer::ConvTranspose { act, .. }
        | Layer::Affine { act, .. }
        | Layer::InstanceNorm { act, .. }
        | Layer::Binary { act, .. } => Some(act),
        _ => None,
    }
}

/// The first fusable pair: producer `i`, its only reader `j`, and what fuses.
fn find(g: &Shaped) -> Option<(usize, usize, How)> {
    let readers = g.readers();
    for (i, a) in g.layers.iter().enumerate() {
        let t = a.output();
        if readers[t] != 1 {
            continue;
        }
        let Some(j) = (i + 1..g.layers.len()).find(|&j| g.layers[j].inputs().contains(&t)) else {
            continue;
        };
        let b = &g.layers[j];
        match (a, b) {
            // An activation after anything with an empty epilogue.
            (_, Layer::Act { .. }) if act_of(a) == Some(&Act::None) => {
                return Some((i, j, How::Act))
            }
            // BatchNorm into the conv before it.
            (
                Layer::Conv {
                    act: Act::None,
                    add: None,
                    ..
                }
                | Layer::ConvTranspose { act: Act::None, .. },
                Layer::Affine { .. },
            ) => return Some((i, j, How::Affine)),
            // A residual Add into the conv's epilogue (same shapes, no broadcasting).
            (
                Layer::Conv {
                    act: Act::None,
                    add: None,
                    ..
                },
                Layer::Binary {
                    a: Operand::T(x),
                    b: Operand::T(y),
                    op: super::BinOp::Add,
                    ..
                },
            ) => {
                let other = if *x == t { *y } else { *x };
                // Not the conv's own input (an identity residual, `conv(x) + x`): a GPU dispatch
                // cannot bind one range twice as writable storage (WebGPU refuses it).
                let own_input = matches!(a, Layer::Conv { x: cx, .. } if *cx == other);
                if other != t
                    && !own_input
                    && g.shapes[other] == g.shapes[t]
                    && g.shapes[b.output()] == g.shapes[t]
                {
                    return Some((i, j, How::Add(other)));
                }
            }
            _ => {}
        }
    }
    None
}

fn set_epilogue(l: &mut Layer, new_out: usize, a: Act) {
    match l {
        Layer::Conv { out, act, .. }
        | Layer::ConvTranspose { out, act, .. }
        | Layer::Affine { out, act, .. }
        | Layer::InstanceNorm { out, act, .. }
        | Layer::Binary { out, act, .. } => {
            *out = new_out;
            *act = a;
        }
        _ => unreachable!("only layers with an epilogue are fused"),
    }
}

/// `w' = w · scale` per output channel, `b' = b · scale + shift`, as new weights.
fn fold_affine(l: &mut Layer, scale: &[f32], shift: &[f32], ws: &mut Vec<Weight>) {
    let (w, b, transposed, groups) = match l {
        Layer::Conv { w, b, groups, .. } => (w, b, false, *groups),
        Layer::ConvTranspose { w, b, groups, .. } => (w, b, true, *groups),
        _ => unreachable!(),
    };
    let src = &ws[*w];
    let s = &src.shape;
    let mut data = src.data.as_ref().clone();
    if transposed {
        // [cin, cout / g, kh, kw]: output channel = group · (cout / g) + o.
        let (cin, cog, kk) = (s[0], s[1], s[2] * s[3]);
        let cig = cin / groups;
        for ci in 0..cin {
            for o in 0..cog {
                let co = (ci / cig) * cog + o;
                for v in &mut data[(ci * cog + o) * kk..(ci * cog + o + 1) * kk] {
                    *v *= scale[co];
                }
            }
        }
    } else {
        let per = s[1] * s[2] * s[3];
        for (co, chunk) in data.chunks_mut(per).enumerate() {
            for v in chunk {
                *v *= scale[co];
            }
        }
    }
    let bias: Vec<f32> = (0..scale.len())
        .map(|co| b.map_or(0.0, |b| ws[b].data[co]) * scale[co] + shift[co])
        .collect();
    let name = src.name.clone();
    let shape = src.shape.clone();
    ws.push(Weight {
        name: format!("{name} (bn folded)"),
        shape,
        data: Arc::new(data),
    });
    *w = ws.len() - 1;
    ws.push(Weight {
        name: format!("{name} bias (bn folded)"),
        shape: vec![bias.len()],
        data: Arc::new(bias),
    });
    *b = Some(ws.len() - 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ops::Window;
    use crate::graph::{BinOp, Const, LayerGraph, Op};

    /// `relu(conv(x) + r)` fuses into one conv; `conv(x) + x` keeps its Add (a GPU dispatch may
    /// not bind the conv's input twice as writable storage).
    #[test]
    fn residual_adds_fuse_except_the_convs_own_input() {
        for own in [false, true] {
            let mut g = LayerGraph::default();
            g.input = g.value("x", None);
            let x = g.input;
            let w = g.value("w", Some(Const::f32(vec![3, 3, 1, 1], vec![0.5; 9])));
            let c = g.value("c", None);
            g.node(
                "conv",
                Op::Conv {
                    win: Window::default(),
                    groups: 1,
                },
                vec![Some(x), Some(w), None],
                vec![c],
            );
            let other = if own {
                x
            } else {
                let r = g.value("r", None);
                g.node("r", Op::Act(Act::Tanh), vec![Some(x)], vec![r]);
                r
            };
            let s = g.value("s", None);
            g.node(
                "add",
                Op::Binary(BinOp::Add),
                vec![Some(c), Some(other)],
                vec![s],
            );
            let y = g.value("y", None);
            g.node("relu", Op::Act(Act::Relu), vec![Some(s)], vec![y]);
            g.output = y;
            let f = fuse(g.instantiate([1, 3, 5, 4]).unwrap());
            let kinds: Vec<String> = f.layers.iter().map(Layer::kind).collect();
            if own {
                assert_eq!(kinds, ["conv1x1", "add+relu"], "{kinds:?}");
            } else {
                assert_eq!(kinds, ["tanh", "conv1x1+add+relu"], "{kinds:?}");
            }
        }
    }
}
