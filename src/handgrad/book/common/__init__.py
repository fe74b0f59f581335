"""The book's ``common`` package on handgrad: functions, layers, gradient, optimizer,
multi_layer_net, multi_layer_net_extend, trainer, util."""
