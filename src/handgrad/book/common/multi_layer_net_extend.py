"""The book's ``common.multi_layer_net_extend.MultiLayerNetExtend``: MultiLayerNet with optional
Dropout and BatchNormalization after each hidden Affine."""

from .multi_layer_net import MultiLayerNet


class MultiLayerNetExtend(MultiLayerNet):
    """``MultiLayerNetExtend(input_size, hidden_size_list, output_size, activation='relu',
    weight_init_std='relu', weight_decay_lambda=0, use_dropout=False, dropout_ration=0.5,
    use_batchnorm=False)``.

    Hidden block ``idx``: ``Affine{idx} -> BatchNorm{idx} -> Activation_function{idx} ->
    Dropout{idx}`` (BatchNorm and Dropout when asked); parameters ``W, b`` of each Affine and
    ``gamma, beta`` of each BatchNorm. ``loss(x, t, train_flg=False)`` and ``predict`` evaluate
    by default; ``gradient`` and ``numerical_gradient`` run in training mode.
    """
