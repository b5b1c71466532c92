"""W&B's Tables quickstart (sweepkit's seed notebook) as a sweep, wrapped the way W&B's tutorials
wrap a notebook: `def train(): with wandb.init() as run: ...` over its cells, then `wandb.sweep`
and `wandb.agent`. Nothing in it knows about sweepkit but where it finds MNIST.

    sweepkit python examples/tables_quickstart_sweep.py            # 4 runs, offline, no account
    sweepkit status                                                # the sweep it made

With W&B credentials the same command runs it on W&B. MNIST is read by torchvision from
sweepkit's bundled sample (nothing is downloaded); the defaults keep it small: 1 epoch over
1,000 training images, 2 x 8 test predictions logged per run.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
import wandb

from sweepkit.train.data import sample_root

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--count", type=int, default=4, help="runs (the grid has 4)")
parser.add_argument("--train-images", type=int, default=1000)
parser.add_argument("--test-images", type=int, default=200)
parser.add_argument("--project", default="table-quickstart-sweep")
args = parser.parse_args()

# The seed's settings. Those it sweeps are in the sweep config; the table is smaller than the
# seed's 10 batches x 32 images, to keep a 4-run sweep quick.
NUM_BATCHES_TO_LOG = 2
NUM_IMAGES_PER_BATCH = 8
NUM_CLASSES = 10

sweep_config = {
    "method": "grid",
    "metric": {"name": "acc", "goal": "maximize"},
    "parameters": {
        "lr": {"values": [0.001, 0.003]},  # the seed's LEARNING_RATE, and three times it
        "l1_size": {"values": [16, 32]},  # the seed's L1_SIZE, and half of it
        "l2_size": {"value": 64},
        "conv_kernel": {"value": 5},
        "batch_size": {"value": 32},
        "epochs": {"value": 1},
    },
}


def get_dataloader(is_train, batch_size, limit):
    "The seed's loader, over the bundled sample and its first `limit` images."
    ds = torchvision.datasets.MNIST(root=str(sample_root()), train=is_train, transform=T.ToTensor())
    ds = torch.utils.data.Subset(ds, range(min(limit, len(ds))))
    # num_workers=0: the seed's 2 worker processes cost more than they bring on a few images.
    return torch.utils.data.DataLoader(dataset=ds, batch_size=batch_size, shuffle=is_train)


# The seed's two-layer ConvNet, its sizes from the run's config.
class ConvNet(nn.Module):
    def __init__(self, l1_size, l2_size, kernel, num_classes=10):
        super().__init__()
        self.layer1 = nn.Sequential(
            nn.Conv2d(1, l1_size, kernel, stride=1, padding=kernel // 2),
            nn.BatchNorm2d(l1_size),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.layer2 = nn.Sequential(
            nn.Conv2d(l1_size, l2_size, kernel, stride=1, padding=kernel // 2),
            nn.BatchNorm2d(l2_size),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.fc = nn.Linear(7 * 7 * l2_size, num_classes)

    def forward(self, x):
        out = self.layer1(x)
        out = self.layer2(out)
        out = out.reshape(out.size(0), -1)
        return self.fc(out)


def log_test_predictions(images, labels, outputs, predicted, test_table, log_counter):
    "The seed's: one table row per image: id, image, guess, truth, a score per class."
    scores = F.softmax(outputs.data, dim=1)
    log_scores = scores.cpu().numpy()
    log_images = images.cpu().numpy()
    log_labels = labels.cpu().numpy()
    log_preds = predicted.cpu().numpy()
    rows = zip(log_images, log_labels, log_preds, log_scores, strict=True)
    for _id, (image, label, guess, score) in enumerate(rows):
        if _id == NUM_IMAGES_PER_BATCH:
            break
        test_table.add_data(f"{_id}_{log_counter}", wandb.Image(image), guess, label, *score)


def train():
    with wandb.init() as run:
        cfg = run.config  # the sweep's parameters for this run
        cfg.update({"img_count": min(10000, NUM_IMAGES_PER_BATCH * NUM_BATCHES_TO_LOG)})
        # Chosen here, not at the top as in the notebook: each run is its own process, and the
        # GPU is first touched in it.
        device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
        train_loader = get_dataloader(True, cfg.batch_size, args.train_images)
        test_loader = get_dataloader(False, 2 * cfg.batch_size, args.test_images)

        model = ConvNet(cfg.l1_size, cfg.l2_size, cfg.conv_kernel, NUM_CLASSES).to(device)
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

        for epoch in range(cfg.epochs):
            model.train()
            for images, labels in train_loader:
                images, labels = images.to(device), labels.to(device)
                loss = criterion(model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                wandb.log({"loss": loss})

            columns = ["id", "image", "guess", "truth"]
            for digit in range(10):
                columns.append("score_" + str(digit))
            test_table = wandb.Table(columns=columns)

            model.eval()
            log_counter = 0
            with torch.no_grad():
                correct = 0
                total = 0
                for images, labels in test_loader:
                    images, labels = images.to(device), labels.to(device)
                    outputs = model(images)
                    _, predicted = torch.max(outputs.data, 1)
                    if log_counter < NUM_BATCHES_TO_LOG:
                        log_test_predictions(
                            images, labels, outputs, predicted, test_table, log_counter
                        )
                        log_counter += 1
                    total += labels.size(0)
                    correct += (predicted == labels).sum().item()
                acc = 100 * correct / total
                wandb.log({"epoch": epoch, "acc": acc})
                print(f"accuracy on {total} test images: {acc:.1f} %")

            wandb.log({"test_predictions": test_table})


sweep_id = wandb.sweep(sweep_config, project=args.project)
wandb.agent(sweep_id, function=train, count=args.count)
print(f"sweep {sweep_id}: {args.count} runs done")
