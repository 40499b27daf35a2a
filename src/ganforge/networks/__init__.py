"""Plain ``nn.Module`` generators and discriminators; they import only torch."""
