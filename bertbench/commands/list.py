"""`list`: the experiments with their variants, columns and plan sizes at every scale."""

from bertbench.experiments.plan import expand
from bertbench.experiments.schema import experiment_names, experiments_dir, load_experiment, load_scales


def add_arguments(parser):
    parser.add_argument("--experiments", default=None, help="folder of experiment TOML files")


def main(args):
    directory = experiments_dir(args.experiments)
    scales = load_scales(directory)
    for name in experiment_names(directory):
        exp = load_experiment(name, directory)
        print(f"{name}: {exp.title}" + (f" [{exp.paper_table}]" if exp.paper_table else ""))
        print(f"  variants: {', '.join(v.name for v in exp.variants)}"
              + (" (+ no_pretraining)" if exp.include_baseline else ""))
        print(f"  columns:  {', '.join(f'{c.name} ({c.task or c.metric})' for c in exp.columns)}")
        for scale in scales:
            plan = expand(exp, scale, scales=scales)
            steps = sum(p.pretrain.num_steps for p in plan.pretrains if p.kind == "pretrain")
            seeds = len(plan.finetunes) and len(set(f.seed for f in plan.finetunes))
            print(f"  {scale:>5}: {len(plan.pretrains)} pretraining ({steps:,} steps), "
                  f"{len(plan.finetunes)} fine-tuning runs, {seeds} seed(s)")
    return 0
