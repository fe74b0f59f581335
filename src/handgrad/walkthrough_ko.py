"""The walkthrough's explanations in Korean, the language of the tutorial handgrad grew from
(``handgrad walkthrough --lang ko``).

``TEXT`` has exactly the keys and the ``{fields}`` of :data:`handgrad.walkthrough.TEXT`; the
numbers and the layout come from the same code, so only the prose differs. The tutorial's own
terms stay as its readers know them: softmax, cross entropy, Affine, Relu, SoftmaxWithLoss,
forward / backward, 역전파, 수치 미분, 은닉층, 정답 레이블, 아주 작은 값 (delta).
"""

from __future__ import annotations

TEXT = {
    "title": "handgrad walkthrough: 튜토리얼의 2층 신경망을 손으로 역전파하기",
    "network": "신경망: {network}",
    "meaning.dout": "dL/d out, SoftmaxWithLoss.backward()의 결과",
    "meaning.relu_dout": "dL/d out2 (두 번째 Relu 앞), relu2.backward(dout)의 결과",
    "meaning.dout1": "dL/d relu_out1, affine2.backward(relu_dout)의 결과",
    "meaning.relu_dout1": "dL/d out1 (첫 번째 Relu 앞), relu1.backward(dout1)의 결과",
    "meaning.dx": "dL/d x, affine1.backward(relu_dout1)의 결과",
    "meaning.parameter": "dL/d {parameter}",
    "example.tutorial": "1. 튜토리얼의 예제",
    "example.tutorial.explanation": (
        "주의: 두 점수의 차이가 {gap:.0f}이라 softmax가 포화되어 있습니다(두 확률은\n"
        "1 - {p:.2g}, {p:.2g}). 실제 기울기는 1e-51 정도입니다. 역전파는 이 값을 계산하지만,\n"
        "0에 가까운 float64 손실은 입력이 1e-5만큼 움직여도 1e-56만큼 변할 수 없어서 수치 미분\n"
        "기울기는 0이 되고 상대 오차는 1이 됩니다. 버그가 아니라 float64의 한계입니다."),
    "example.unsaturated": "2. 포화되지 않은 입력에서 같은 신경망",
    "example.unsaturated.explanation": (
        "x = [[-1, 0.3]]: 두 점수의 차이는 {gap:.1f}, 기울기는 0.03 정도이고, 역전파와 수치 미분\n"
        "기울기가 일치합니다(가장 큰 상대 오차 {worst:.1e}). 세 번째 은닉 유닛이 음수라서 첫 번째\n"
        "Relu가 그 기울기를 막습니다(relu_dout1의 0)."),
    "scores": "(두 번째 Relu를 지난 점수)",
    "loss": "(정확한 값 {exact:.4g}; 튜토리얼의 delta 버전은 {delta:.6g})",
    "trace_warnings": "trace 경고: {warnings}",
    "none": "없음",
    "backward": ("튜토리얼의 순서대로 역전파합니다: 역전파로 구한 기울기(backprop), 같은 값을 중앙 차분\n"
                 "(eps = 1e-5)으로 구한 수치 미분 기울기(numerical), 그리고 둘의 상대 오차."),
    "label.backprop": "backprop",
    "label.numerical": "numerical",
    "relative_error": "상대 오차 = {error:.2e}",
    "cross_entropy": "3. 튜토리얼의 cross entropy 예제",
    "cross_entropy.formula": "cross_entropy_error(y, t) = -sum(t * log(y + 1e-7)), label = 5 (인덱스 4):",
    "cross_entropy.correct": "정답인 경우 (y[4] = 0.9)",
    "cross_entropy.wrong": "오류인 경우 (y[4] = 0.0)",
    "cross_entropy.cap": "{cap:.3f} = -log(1e-7): 신경망이 아무리 틀려도 이 손실은 이보다 커질 수 없습니다.",
    "pitfalls": "4. 튜토리얼 코드가 틀린 곳",
    "pitfall.softmax_max_never_subtracted":
        "튜토리얼은 c = np.max(a)를 계산하지만 빼지 않습니다: exp(1000)이 오버플로됩니다.",
    "pitfall.softmax_normalises_whole_batch":
        "np.sum(exp_a)가 배치 전체를 더하므로 각 행의 합이 1이 되지 않습니다.",
    "pitfall.delta_makes_loss_negative": (
        "cross_entropy_error는 log 안에 아주 작은 값 delta = 1e-7을 더합니다. 이 신경망에서는 정답 "
        "클래스의 확률이 1.0이라 튜토리얼의 손실은 -log(1 + 1e-7), 즉 약간 음수가 됩니다."),
    "label.input": "입력",
    "label.tutorial": "튜토리얼",
    "label.handgrad": "handgrad",
    "numpy_warned": "(NumPy 경고: {warnings})",
    "row_sums": "행의 합 {sums}",
    "delta.values": "튜토리얼: {tutorial:.6g}   정확한 값: {exact:.4g}   handgrad (log-softmax): {handgrad:.6g}",
    "delta.note": "(handgrad의 0.0은 정확한 값을 float64로 반올림한 것이며, 음수가 되는 일은 없습니다.)",
    "pitfalls.more": (
        "* relu_backward_writes_into_dout: 튜토리얼의 Relu.backward는 dout[mask] = 0으로 호출한 쪽의\n"
        "    배열을 바꿉니다; handgrad는 새 배열(dout * mask)을 돌려줍니다.\n"
        "* loss_backward_ignores_dout: SoftmaxWithLoss.backward(dout)는 dout을 곱해야 합니다; handgrad는 곱합니다.\n"
        "* batch_size_from_labels: t.shape[0]으로 나누면 원-핫 t 하나짜리 샘플에서 틀립니다(클래스 수로\n"
        "    나누게 됩니다); handgrad는 x의 행 수로 나눕니다."),
}

#: handgrad.inspect.trace's warnings that the walkthrough can show, reworded in Korean.
TRACE_WARNINGS = [
    (r"softmax saturated: top probability above 0\.999 for (\d+)% of samples; the loss's gradients are nearly 0 there",
     r"softmax 포화: 샘플의 \1%에서 가장 큰 확률이 0.999를 넘습니다; 그곳에서 손실의 기울기는 거의 0입니다"),
]
