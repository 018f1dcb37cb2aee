// Package dml holds the margin-softmax heads that train dmlgo's embeddings:
// softmax, NormFace, SphereFace, CosFace (AM-softmax), ArcFace, InsightFace's
// combined margin, the Discriminative Margin Loss (DML) in three forms, and
// the Proxy-Anchor loss.
//
// A head owns the class weights W (C, D), one proxy per item id shared by
// the shop and consumer domains, computes the logits of a batch of
// embeddings and their cross-entropy with the backend's fused
// margin-softmax kernel (backend.Ops.MarginSoftmaxCE: forward and backward
// in one pass, float64 inside, a stable log-sum-exp), and gives the plain
// scaled cosines for inference. Build one with New or from a spec string
// with Parse ("arcface:s=30,m=0.4").
//
// # Notation
//
// N = batch, D = embedding size, C = classes; x_i (D) the embedding of
// sample i with label y_i; W_j (D) the proxy of class j.
// Cosine heads normalise with a floor ε_n (Config.NormEps), so that a zero
// vector divides by ε_n, never by 0:
//
//	x̂_i = x_i / max(|x_i|, ε_n),  ŵ_j = W_j / max(|W_j|, ε_n),  c_ij = cos θ_ij = x̂_i·ŵ_j
//
// The logits are z_ij = f_y(c_ij) for the label (j = y_i) and f_o(c_ij)
// otherwise; the loss is the mean cross-entropy
//
//	ℓ_i = log Σ_j exp(z_ij) − z_{i,y_i}        (computed as m + log Σ_j exp(z_ij − m), m = max_j z_ij)
//	L   = (1/N) Σ_i ℓ_i                          (+ dml/class's margin term)
//
// Angular heads first clamp ĉ = min(max(c, −1+ε), 1−ε) (Config.Eps) and
// take θ = acos ĉ; outside the clamp the logit is constant in c, so its
// derivative there is 0.
//
// # Gradients, common part
//
// With p_ij = softmax_j(z_i) and [·] the indicator,
//
//	∂L/∂z_ij = (p_ij − [j = y_i]) / N
//	∂L/∂c_ij = ∂L/∂z_ij · f'(c_ij)          (f' the derivative of f_y or f_o below)
//
// which is what the fused kernel writes (dcos). Through the cosine and the
// normalisation (autograd's MatMul and L2Normalize rules):
//
//	∂L/∂x̂_i = Σ_j ∂L/∂c_ij ŵ_j,                   ∂L/∂ŵ_j = Σ_i ∂L/∂c_ij x̂_i
//	∂L/∂x_i = (∂L/∂x̂_i − x̂_i ⟨x̂_i, ∂L/∂x̂_i⟩) / |x_i|   when |x_i| > ε_n, else ∂L/∂x̂_i / ε_n
//
// and the same for W_j. The softmax head has no normalisation:
// z_ij = W_j·x_i + b_j, ∂L/∂x_i = Σ_j ∂L/∂z_ij W_j, ∂L/∂W_j = Σ_i ∂L/∂z_ij x_i,
// ∂L/∂b_j = Σ_i ∂L/∂z_ij.
//
// # The heads
//
// For every cosine head f_o(c) = s·c, f_o'(c) = s, except where noted.
//
// softmax: z_ij = W_j·x_i + b_j (Softmax.Bias; no scale, no margin).
//
// normface: f_y(c) = s·c, f_y' = s.
//
// sphereface (multiplicative angular margin m, an integer ≥ 1):
//
//	ψ(θ) = (−1)^k cos(mθ) − 2k,   k = ⌊mθ/π⌋ ∈ {0, …, m−1}
//	f_y(c) = s·(λ·ĉ + ψ(θ)) / (1 + λ)
//	dψ/dc = (−1)^k · m · sin(mθ) / sin θ          (= (−1)^k m U_{m−1}(ĉ), a Chebyshev polynomial)
//	f_y'(c) = s·(λ + dψ/dc) / (1 + λ)
//
// ψ is continuous and decreasing on [0, π] (from 1 to −2m+1), so the target
// logit is monotone. λ blends in the plain cosine early in training; the
// SphereFace paper's code anneals it per iteration t:
//
//	λ(t) = max(λ_min, base·(1 + γ·t)^(−power)),   base 1000, γ 0.12, power 1, λ_min 5
//
// (SphereFace.Anneal; t is the head's step counter, see Head.SetStep).
// With Anneal off, λ = SphereFace.Lambda (0 gives pure ψ). SphereFace itself scales
// by the feature norm |x|; dmlgo normalises x and scales by s, as the other
// heads do.
//
// cosface / AM-softmax: f_y(c) = s·(c − m), f_y' = s.
//
// arcface (additive angular margin m in radians):
//
//	f_y(c) = s·cos(θ + m)           when θ ≤ π − m,     f_y' = s·sin(θ + m)/sin θ
//	f_y(c) = s·(ĉ − m·sin m)        when θ > π − m,     f_y' = s
//
// The fallback (InsightFace's "cos θ − mm", mm = sin(π − m)·m) keeps the
// target logit decreasing in θ past π − m, where cos(θ + m) would turn back
// up. At θ = π − m it steps down from −1 to −cos m − m·sin m, by
// m·sin m − (1 − cos m) ≥ 0 (true for every m < π/2, which Validate
// requires), and then decreases with cos θ, so the target logit is
// non-increasing over all of [0, π]. With ArcFace.EasyMargin the rule is
// instead f_y(c) = s·c wherever c ≤ 0 (s·cos(θ + m) for c > 0): the target
// logit jumps up at θ = π/2 and is not monotone, as in InsightFace.
//
// combined (InsightFace's m1, m2, m3):
//
//	f_y(c) = s·(cos(m1·θ + m2) − m3),   f_y' = s·m1·sin(m1·θ + m2)/sin θ
//
// m1 = 1, m3 = 0 is arcface without the fallback; m1 = 1, m2 = 0 is cosface;
// m2 = m3 = 0 is a continuous SphereFace-like multiplicative margin. There is
// no fallback: past m1·θ + m2 > π the target logit rises again.
//
// # DML
//
// DML (Alirezazadeh, Dornaika, Moujahid, Sensors 22(7):2660, 2022) learns a
// margin for positive pairs and a larger one for negative pairs. In logits:
//
//	f_y(c) = s·(c − m_p),   f_o,j(c) = s·(c + m_n,j)
//
// dml/fixed: m_n,j = m_n for every class, m_p < m_n fixed. f' = s for both.
// It is cosface with m = m_p + m_n, exactly: adding s·m_n to every logit of
// a row does not change the softmax, and z^fixed_ij = z^cosface(m_p+m_n)_ij + s·m_n
// for every j (target included), so the losses and every gradient agree.
// A test checks it.
//
// dml/class: a learned negative margin per class and a learned m_p, with
// parameters p (the m_p parameter, 1) and ρ (C):
//
//	m_p   = min(max(p, 0), m_max − δ)                   (or the constant m_p with learn_mp=false)
//	u_j   = m_p + δ + softplus(ρ_j)
//	m_n,j = min(u_j, m_max)
//	L     = (1/N) Σ_i ℓ_i − λ·(1/C) Σ_j m_n,j
//
// so that 0 ≤ m_p ≤ m_max − δ and m_p + δ ≤ m_n,j ≤ m_max always hold.
// The term −λ·mean_j m_n,j (AdaptiveFace's) is needed because descent on
// the cross-entropy alone shrinks every margin:
//
//	∂L/∂m_n,j       = (s/N) Σ_{i: y_i ≠ j} p_ij − λ/C
//	∂L/∂m_p|direct  = (s/N) Σ_i (1 − p_{i,y_i})
//	∂L/∂u_j         = ∂L/∂m_n,j · [u_j ≤ m_max]
//	∂L/∂ρ_j         = ∂L/∂u_j · σ(ρ_j)                       (σ the logistic function, softplus' = σ)
//	∂L/∂m_p         = ∂L/∂m_p|direct + Σ_j ∂L/∂u_j
//	∂L/∂p           = ∂L/∂m_p · [0 ≤ p ≤ m_max − δ]
//
// (a clamp passes the gradient at its bounds, as in PyTorch). The kernel
// supplies ∂ℓ/∂m_n,j and ∂ℓ/∂m_p; autograd's Softplus, AddScalarVar,
// Affine, Clamp and Mean rules do the rest.
//
// Before each training forward the head projects p onto
// [0, m_max − δ − 10⁻⁶] and each ρ_j onto softplus(ρ_j) ≤ m_max − m_p − δ − 10⁻⁶
// (projected gradient descent): the clamps in the forward then only guard
// against rounding, and a margin at a bound still gets a gradient and moves
// back when the loss asks for it, instead of freezing behind the clamp's
// zero gradient. m_p is clamped and projected rather than written as
// softplus(μ): its gradient is large (below), and with a softplus the
// synthetic measurement collapsed it to softplus(μ) ≈ 0 early in training,
// where softplus' = σ(μ) ≈ 0 too and m_p could hardly grow again; at p = 0
// the projected clamp keeps the whole gradient.
//
// What the gradients imply: the cross-entropy pushes a class's margin down
// in proportion to the probability it takes as a negative, so without the
// λ-term the hardest classes lose their margins first; λ sets the level
// where the two balance (the m_n,j grow while the mean non-target
// probability 1 − p_y is below about λ/s, m_p while it is below λ/(2s),
// since ∂L/∂m_p ≈ 2s(1 − p_y) − λ). m_p and a uniform shift of all m_n,j
// are redundant (the softmax sees only m_p + mean m_n and the spread of
// the m_n,j). The per-class gradient is O(s/C) while m_p's is O(s), so the
// ρ_j form the parameter group "margins" (learning-rate scale margin_lr)
// and p the group "margin_p" (scale margin_lr/C), both without weight
// decay: under SGD m_p then moves like one class margin (under Adam, which
// normalises gradients, m_p moves C times slower than the ρ_j). With
// thousands of classes and SGD the m_n,j move slowly unless margin_lr is
// raised.
//
// dml/adaptive: the negative margin grows with the negative's cosine, so
// near-duplicate items are pushed apart hardest:
//
//	m_n(c) = m_n·(1 + c)/2 ∈ [0, m_n],   f_o(c) = s·(c + m_n(1 + c)/2),   f_o' = s·(1 + m_n/2)
//
// and f_y(c) = s·(c − m_p). m_p and m_n are fixed. Since the map is affine
// in c, f_o = s·(1 + m_n/2)·c + s·m_n/2: up to the constant (which the
// softmax ignores, as for dml/fixed) this is cosface with margin m_p + m_n/2
// whose negatives have the larger scale s·(1 + m_n/2) — a sharper softmax
// over the negatives, not a reduction to cosface (a test shows a case where
// no cosface margin gives the same loss and gradients).
//
// # Composed heads: proxy-anchor
//
// A head whose table entry (in its file, listed in heads.go) sets loss
// records its loss with autograd ops instead of the fused kernel; such
// heads are listed in Composed, not Names, because a step uploads their
// label mask besides the batch. proxy-anchor (Kim, Kim, Cho, Kwak, "Proxy Anchor Loss for
// Deep Metric Learning", CVPR 2020), with c_ip as above, α (alpha,
// default 32) and δ (delta, default 0.1):
//
//	L = (1/|P⁺|) Σ_{p∈P⁺} ln(1 + Σ_{i: y_i=p} exp(−α(c_ip − δ)))
//	  + (1/C)    Σ_p      ln(1 + Σ_{i: y_i≠p} exp(α(c_ip + δ)))
//
// P⁺ the classes with a sample in the batch. Each ln(1 + Σ exp) is
// autograd's Log1pSumExp, m + ln(e^{−m} + Σ e^{z−m}) with m = max(0, max z),
// so no exponential exceeds 1; its gradient is the softmax of the column
// with the 1 as an extra zero logit, and MatMul and L2Normalize carry it to
// x and W as for the other cosine heads. Inference logits are α·c.
//
// # Defaults
//
// From the literature: cosface s = 64, m = 0.35; arcface s = 64, m = 0.5;
// combined s = 64, (m1, m2, m3) = (1, 0.3, 0.2); sphereface m = 4 with the
// annealing above and s = 30; normface s = 30. DML, by measurement on
// FMNIST-C2S (docs/dml_sweep.md): dml/class s = 30, m_p = 0.2, m_n = 0.35,
// δ = 0.05, m_max = 0.5, λ = 60, margin_lr = 1; dml/fixed s = 30,
// m_p = 0.1, m_n = 0.25; dml/adaptive s = 30, m_p = 0.1, m_n = 0.4 (not
// swept); "dml" means dml/class.
//
// The sweep (resnet-s, 8 epochs, the demo's budget) varied s over 24, 30,
// 48 and 64, the total margin m_p + m_n from 0.25 to 0.75 and λ over s and
// 2s for dml/class, with cosface as the control. s = 30 was best by far
// (s = 64 lost more than 25 points of top-20), the total margin peaked
// near 0.55, and λ = s let the margins collapse (m_p → 0) and lost 1.5
// points, while with λ = 2s m_p held and every m_n,j grew by about 0.03.
// Over 3 seeds dml/class at (0.2, 0.35) leads the previous (0.1, 0.25) by
// 1.3 points of top-20 and cosface m = 0.35 by 1.7, less than the seeds'
// spread (± 3.6). Cosface did not gain from m = 0.55 over 0.35, so
// dml/fixed (cosface with m = m_p + m_n) keeps a total of 0.35. λ = 2s had
// also come out of a small synthetic run (`go run ./dml/testdata/measure`:
// with λ ≤ s/2 the learned margins collapsed to their floors, with 4s they
// ran to their clamps). dml/adaptive is worse than the others on
// FMNIST-C2S (RESULTS.md: top-20 0.338 ± 0.032 against about 0.41).
// Keep λ ≈ 2s when changing s. Every cosine head uses eps = 1e-6 and norm_eps = 1e-6.
//
// # Numerics
//
// The kernel works in float64 per row with a stable log-sum-exp and clamps
// before every acos. Forward checks the loss every CheckEvery steps (default
// every step: one scalar download, the only transfer between device and
// host in a training step: dml/class's projection runs on the device
// (backend.ProjectMargins), its m_p is read there by the kernel, and
// LastLoss gives the training loop the value read); a NaN or ±Inf there, which any NaN or
// Inf in the embeddings, the weights or the margins produces, makes it scan
// them and return a *NonFiniteError naming the step, the tensor and the
// element, instead of letting it reach the optimizer. CheckFinite scans any
// tensor on demand.
package dml
