"""Train a small CNN on handwritten digits, written out on the library API (what `tinygrad-conv train` does).

    python demos/train_digits.py        # ~98.5% test accuracy in a few seconds
    python demos/train_digits.py 3      # 3 epochs instead of the CLI's default

Model, data, optimizer and loop are tinygrad_conv/train.py's defaults, drawn from the same seeded generators in
the same order, so this script and the CLI end with the same weights (tests/test_train.py checks it).
"""

import sys
import time

import numpy as np

from tinygrad_conv import Tensor, data, nn, no_grad, optim
from tinygrad_conv import functional as F
from tinygrad_conv.train import TrainConfig, cosine_lr

config = TrainConfig(epochs=int(sys.argv[1])) if len(sys.argv) > 1 else TrainConfig()  # the CLI's defaults
x_train, y_train, x_test, y_test = data.load_split()  # (1437, 1, 8, 8) and (360, 1, 8, 8), pixels in [0, 1]

rng = np.random.default_rng(config.seed)
model = nn.Sequential(
    nn.Conv2d(1, 24, 3, padding=1, rng=rng),  # (N, 1, 8, 8)  → (N, 24, 8, 8)
    nn.ReLU(),
    nn.Conv2d(24, 48, 3, padding=1, rng=rng),  # → (N, 48, 8, 8)
    nn.ReLU(),
    nn.MaxPool2d(2),  # → (N, 48, 4, 4)
    nn.Flatten(),  # → (N, 768)
    nn.Dropout(0.25, rng=rng),  # while training, zero a quarter of the features at random
    nn.Linear(768, 10, rng=rng),  # → (N, 10) logits
)
optimizer = optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
order_rng = np.random.default_rng(config.seed + 1)  # the batch order and the shifts

for epoch in range(config.epochs):
    model.train()
    optimizer.lr = cosine_lr(config.lr, epoch, config.epochs)  # from lr down to ~0 over the run
    started = time.perf_counter()
    for images, labels in data.batches(x_train, y_train, config.batch_size, rng=order_rng):
        images = data.standardize(data.random_shift(images, order_rng))  # move each digit by up to one pixel
        loss = F.cross_entropy(model(Tensor(images)), labels)  # forward: builds the graph
        optimizer.zero_grad()
        loss.backward()  # backward: every parameter's .grad, derived through conv2d's primitives
        optimizer.step()  # θ ← θ − lr·(momentum buffer), in place
    model.eval()
    with no_grad():  # evaluation records no graph
        accuracy = (model(Tensor(data.standardize(x_test))).data.argmax(axis=1) == y_test).mean()
    print(f"epoch {epoch + 1:>2}: loss {loss.item():.4f}, test accuracy {100 * accuracy:.1f}%, "
          f"{time.perf_counter() - started:.2f} s")
